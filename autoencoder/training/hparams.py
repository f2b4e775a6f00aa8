"""What TensorBoard's HParams tab shows of a training run: a few dozen columns, those that tell runs
apart first, then the run's headline figures.

TensorBoard sorts the hyperparameter columns by name, those marked as differing first, and ticks
the first five. So the keys a run varies lead, marked as differing: in a sweep the swept keys, in a
single run those set on its command line (`launch` in the config, autoencoder.training.launch).
Then come the config groups chosen (`model` = conv, ...), the settings and the run's status: their
names start with a two-digit rank so that they sort in that order, and the tab shows them without
it (as display names). Left out: `_target_`-style keys, paths, keys that repeat another one, and
what only runs the job (callbacks, logger, evaluation, the Trainer's plumbing).
"""

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from autoencoder.runs.record import RunRecord, Status

# The config groups shown, in this order; their nodes' settings follow in the same order.
GROUPS = ("model", "variant", "prior", "corruption", "data", "optimizer", "scheduler", "trainer", "early_stopping", "experiment", "hparams_search")
# Settings at the top of the config, shown before the groups' own.
TOP_LEVEL = ("noise", "loss", "seed")
# The Trainer's arguments a user tunes; the others only run the job.
TRAINER = ("max_epochs", "precision", "accumulate_grad_batches", "gradient_clip_val")
# Where files are: never shown, not even when set on the command line.
PATHS = ("*_dir", "*path")
NOT_SETTINGS = (
    *PATHS,
    # how the data are fetched and checked, how Lightning steps a schedule or watches the loss
    *("data.download", "data.check_md5", "scheduler.steps_argument", "scheduler.lightning.*", "early_stopping.monitor", "early_stopping.mode"),
    # repeats of noise, seed, optimizer.lr, the dataset's image size, the model's (a prior's links to it) and the prior
    *("corruption.noise", "data.shuffle_seed", "scheduler.max_lr", "data.image_shape", "model.input_shape", "prior.input_shape", "prior.latent_dim"),
    *("variant.prior", "variant.prior.*"),
)
STATUS_RANK = 99


@dataclass(frozen=True)
class Column:
    """A hyperparameter column: TensorBoard sorts by `name` and keys the run's value with it; the tab
    shows `label`. A column that `leads` is marked as differing between runs."""

    name: str
    label: str
    value: bool | int | float | str
    leads: bool = False


@dataclass(frozen=True)
class Metric:
    """A metric column: the scalar tag whose last value TensorBoard shows, its label, and the value to
    log there (None: the run has logged that tag itself)."""

    tag: str
    label: str
    value: float | None = None


def _shown(key: str, hidden: tuple[str, ...]) -> bool:
    return not any(part.startswith("_") for part in key.split(".")) and not any(fnmatch.fnmatchcase(key, pattern) for pattern in hidden)


def _leaves(node: DictConfig, prefix: str) -> Iterator[str]:
    """The dotted keys of the values under `node` (a list is one value)."""
    for key in node:
        value = OmegaConf.select(node, str(key))  # a mandatory value not given (???) is None
        yield from _leaves(value, f"{prefix}.{key}") if isinstance(value, DictConfig) else [f"{prefix}.{key}"]


def _settings(cfg: DictConfig) -> Iterator[str]:
    """The keys of the settings shown, top-level ones first, then by group."""
    yield from (key for key in TOP_LEVEL if key in cfg)
    for group in GROUPS:
        if group == "trainer":
            yield from (f"trainer.{key}" for key in TRAINER if key in cfg.get("trainer", {}))
        elif isinstance(cfg.get(group), DictConfig):
            yield from (key for key in _leaves(cfg[group], group) if _shown(key, NOT_SETTINGS))


def _rank(key: str) -> int:
    """Where a setting sorts: after the groups' columns (ranks 0 to len(GROUPS) - 1), the top-level
    settings, then each group's in the order of GROUPS, then any other key set on the command line."""
    group = key.split(".", 1)[0]
    if "." not in key:
        return len(GROUPS)
    return len(GROUPS) + 1 + (GROUPS.index(group) if group in GROUPS else len(GROUPS))


def _plain(value: object) -> bool | int | float | str:
    """A value as the tab holds it: numbers, booleans and text (null and lists as Hydra writes them)."""
    if value is None:
        return "null"
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value, resolve=True))
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def hparam_columns(cfg: DictConfig, status: Status) -> list[Column]:
    """The run's hyperparameter columns, in the order the tab shows them."""
    launch = cfg.get("launch") or {}
    leading = set(launch.get("swept", launch.get("keys", [])))
    chosen = launch.get("groups", {})
    found = [Column(f"{rank:02d} {group}", group, chosen[group], group in leading) for rank, group in enumerate(GROUPS) if group in chosen]
    keys = dict.fromkeys([*_settings(cfg), *(key for key in launch.get("keys", []) if key not in chosen and _shown(key, PATHS))])
    found += [Column(f"{_rank(key):02d} {key}", key, _plain(OmegaConf.select(cfg, key)), key in leading) for key in keys]
    found.append(Column(f"{STATUS_RANK} status", "status", status.value))
    return sorted(found, key=lambda column: (not column.leads, column.name))


def metric_columns(record: RunRecord) -> list[Metric]:
    """The metric columns of a run's record: best val loss, test loss and, with evaluate=true, the
    evaluation's headline figures (as `test/<figure>`), those the run has."""
    found = [] if record.best_val_loss is None else [Metric("val/loss_best", "best val loss", record.best_val_loss)]
    found += [] if record.test_loss is None else [Metric("test/loss", "test loss")]
    return found + [Metric(f"test/{name.removeprefix('test_')}", name.replace("_", " "), value) for name, value in (record.evaluation or {}).items()]
