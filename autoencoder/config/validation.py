"""Every value a user can set, checked before anything is built.

A setting's type, range and default are written once, beside what it configures:

- a node with a `_target_` (a dataset, network, variant, corruption, schedule, measure, callback,
  Lightning's Trainer, a torch optimizer) takes the keyword arguments of its class or function
  (`settings`): each one's rule is the `Annotated[...]` rule of its annotation
  (`beta: Annotated[float, number(0)] = 1.0`), else a narrower rule for a third-party class
  (`THIRD_PARTY`: Lightning's `max_epochs` is an integer >= -1), else its plain type hint; its
  default is the signature's. A node's YAML names only what it chooses and links (`noise: ${noise}`).
- the other keys are the command's own, in its rule set: `RULES` here is the training config's
  (train, shapes, and the base of anomaly's); evaluate's, encode's, sample's, ... are kept beside
  their function, so that a key such as `seed` or `steps` means one thing per command.

`validate(cfg, rules)` walks every key of a composed config once, stops at the first bad or unknown
one with one line naming the key, the value and what is allowed, and fills in the defaults a node
left out, so that the config a run keeps says all it ran with. A few checks need two keys at once
(`CROSS_CHECKS`). Keys that only repeat another (`${...}` interpolations) are checked where they
point. This module imports a node's class to read its signature, and the light commands' nodes
(datasets) are light.
"""

import collections.abc
import fnmatch
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, Union, get_args, get_origin

from hydra.utils import get_class, get_object
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from autoencoder import CONFIG_DIR
from autoencoder.utils.cli import closest
from autoencoder.utils.errors import UserError
from autoencoder.utils.hardware import PRECISIONS, uses_gpu


@dataclass(frozen=True)
class Rule:
    accepts: Callable[[object], bool]
    allowed: str  # what is allowed, as the error line says it


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _or_null(rule: Rule, null: bool) -> Rule:
    return Rule(lambda v: v is None or rule.accepts(v), f"{rule.allowed} or null") if null else rule


def integer(low: int | None = None, high: int | None = None, null: bool = False) -> Rule:
    if high is not None:
        allowed = f"an integer in [{low}, {high}]"
    else:
        allowed = "an integer" if low is None else f"an integer >= {low}"
    ok = lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high)  # noqa: E731
    return _or_null(Rule(ok, allowed), null)


def number(low: float | None = None, high: float | None = None, above: float | None = None, below: float | None = None, null: bool = False) -> Rule:
    """A finite number within the bounds given: `low`/`high` included, `above`/`below` excluded."""
    start = f"[{low:g}" if low is not None else f"({above:g}" if above is not None else None
    end = f"{high:g}]" if high is not None else f"{below:g})" if below is not None else None
    if start and end:
        allowed = f"a number in {start}, {end}"
    elif start:
        allowed = f"a number {'>=' if low is not None else '>'} {start[1:]}"
    elif end:
        allowed = f"a number {'<=' if high is not None else '<'} {end[:-1]}"
    else:
        allowed = "a number"

    def ok(v: object) -> bool:
        return _is_number(v) and (low is None or v >= low) and (high is None or v <= high) and (above is None or v > above) and (below is None or v < below)

    return _or_null(Rule(ok, allowed), null)


def boolean(null: bool = False) -> Rule:
    return _or_null(Rule(lambda v: isinstance(v, bool), "true or false"), null)


def text(null: bool = False) -> Rule:
    return _or_null(Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string"), null)


def one_of(*options: object) -> Rule:
    # `True == 1` in Python: compare types too, so that 1 is not taken for true.
    return Rule(lambda v: any(type(v) is type(o) and v == o for o in options), "one of " + ", ".join(str(o) for o in options))


def integers(low: int = 0, high: int | None = None, empty: bool = False, distinct: bool = False, length: int | None = None, null: bool = False) -> Rule:
    def ok(v: object) -> bool:
        if not isinstance(v, list) or not all(_is_int(x) and x >= low and (high is None or x <= high) for x in v):
            return False
        return (empty or len(v) > 0) and (not distinct or len(set(v)) == len(v)) and (length is None or len(v) == length)

    what = f"{length} integers" if length else f"a{'' if empty else ' non-empty'} list of{' distinct' if distinct else ''} integers"
    allowed = f"{what} {'>= ' + str(low) if high is None else f'in [{low}, {high}]'}"
    return _or_null(Rule(ok, allowed), null)


def strings(empty: bool = False, options: tuple[str, ...] | None = None) -> Rule:
    ok = lambda v: isinstance(v, list) and (empty or len(v) > 0) and all(isinstance(x, str) and (options is None or x in options) for x in v)  # noqa: E731
    return Rule(ok, f"a{'' if empty else ' non-empty'} list of {'names from ' + ', '.join(options) if options else 'strings'}")


def numbers(low: float = 0) -> Rule:
    return Rule(lambda v: isinstance(v, list) and len(v) > 0 and all(_is_number(x) and x >= low for x in v), f"a non-empty list of numbers >= {low:g}")


def batches_or_fraction(null: bool = True) -> Rule:
    """Lightning's limit_*_batches and overfit_batches: a number of batches or a fraction of them."""
    ok = lambda v: (_is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1)  # noqa: E731
    return _or_null(Rule(ok, "a number of batches (integer >= 0) or a fraction (0.0 to 1.0)"), null)


def anything_of(*rules: Rule) -> Rule:
    return Rule(lambda v: any(r.accepts(v) for r in rules), " or ".join(r.allowed for r in rules))


NULL = Rule(lambda v: v is None, "null")
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP")
CLASSES = Rule(
    lambda v: (
        v is None or (isinstance(v, list) and len(v) > 0 and len(set(v)) == len(v) and all((_is_int(c) and c >= 0) or (isinstance(c, str) and c) for c in v))
    ),
    "a non-empty list of distinct class names or labels (integers >= 0) or null",
)
FRACTION = number(above=0, below=1)
COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# The corruptions with a noise level, which the denoising measure sweeps (not the transformations).
CORRUPTIONS = tuple(sorted(p.stem for p in (CONFIG_DIR / "corruption").glob("*.yaml") if "noise" in OmegaConf.load(p)))


def rule_of_type(hint: object) -> Rule | None:
    """The rule of a plain type hint, for what a config can hold of it; None where it can hold
    nothing of it (a module, a callable)."""
    simple = {type(None): NULL, bool: boolean(), int: integer(), float: number(), str: Rule(lambda v: isinstance(v, str), "a string")}
    if hint in simple:
        return simple[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return one_of(*args)
    if origin in (Union, types.UnionType):
        kinds = [a for a in args if a is not type(None) and not (a is int and float in args)]  # a number covers an integer
        parts = [rule for a in kinds if (rule := rule_of_type(a)) is not None]
        if not parts:
            return NULL if type(None) in args else None
        return _or_null(anything_of(*parts), type(None) in args)
    if origin in (list, tuple, collections.abc.Sequence) and args and (item := rule_of_type(args[0])) is not None:
        return Rule(lambda v: isinstance(v, list) and all(item.accepts(x) for x in v), f"a list, each {item.allowed}")
    return None


# Lightning's and torch's arguments whose range is narrower than their type hint says.
THIRD_PARTY: dict[str, dict[str, Rule]] = {
    "lightning.Trainer": {
        "accelerator": one_of("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
        "devices": anything_of(integer(-1), text(), integers(0)),
        "num_nodes": integer(1),
        "precision": one_of(*PRECISIONS),
        "fast_dev_run": anything_of(boolean(), integer(0)),
        "max_epochs": integer(-1, null=True),
        "min_epochs": integer(0, null=True),
        "max_steps": integer(-1),
        "min_steps": integer(0, null=True),
        "limit_train_batches": batches_or_fraction(),
        "limit_val_batches": batches_or_fraction(),
        "limit_test_batches": batches_or_fraction(),
        "limit_predict_batches": batches_or_fraction(),
        "overfit_batches": batches_or_fraction(null=False),
        "val_check_interval": anything_of(integer(1, null=True), number(above=0)),
        "check_val_every_n_epoch": integer(1, null=True),
        "num_sanity_val_steps": integer(-1, null=True),
        "log_every_n_steps": integer(1, null=True),
        "accumulate_grad_batches": integer(1),
        "gradient_clip_val": number(0, null=True),
        "reload_dataloaders_every_n_epochs": integer(0),
        "plugins": anything_of(text(null=True), strings()),  # a plugin's name, or a node with its _target_
    },
    "torch.Adam": {"lr": number(above=0), "weight_decay": number(0)},
    "torch.AdamW": {"lr": number(above=0), "weight_decay": number(0)},
    "torch.OneCycleLR": {"max_lr": number(above=0), "pct_start": FRACTION, "div_factor": number(above=0), "final_div_factor": number(above=0)},
    "torch.ReduceLROnPlateau": {"factor": FRACTION, "patience": integer(0), "threshold": number(0), "min_lr": number(0)},
    "lightning.EarlyStopping": {"mode": one_of("min", "max"), "patience": integer(0), "min_delta": number(0)},
    "lightning.ModelCheckpoint": {"mode": one_of("min", "max"), "save_top_k": integer(-1)},
    "lightning.ModelSummary": {"max_depth": integer(-1)},
}


@dataclass(frozen=True)
class Setting:
    """One keyword argument of a node's class: its rule (None: not a value a config can hold), its
    default (`inspect.Parameter.empty`: none a config can hold), and whether validation writes that
    default into a config that leaves the setting out: for the framework's own classes (another
    library's defaults are that library's, pinned with its version)."""

    rule: Rule | None
    default: object = inspect.Parameter.empty
    filled: bool = False


def _plain(value: object) -> object:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


@functools.cache
def settings(target: str) -> tuple[dict[str, Setting], bool]:
    """The settings of a `_target_`, by name, and whether it takes other keywords too (**kwargs
    that no class in its line names). A class's own `**kwargs` passed on to its parent bring
    the parent's arguments."""
    obj = get_object(target)
    owners = [c for c in obj.__mro__ if "__init__" in vars(c)] if isinstance(obj, type) else [obj]
    taken: dict[str, Setting] = {}
    for owner in owners:
        function = owner.__init__ if isinstance(obj, type) else owner
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except (NameError, TypeError):  # names imported for type checking only
            hints = {}
        narrower = THIRD_PARTY.get(f"{owner.__module__.partition('.')[0]}.{owner.__name__}", {})
        parameters = list(inspect.signature(function).parameters.values())
        for p in parameters:
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in taken:
                continue
            hint = hints.get(p.name)
            marked = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Rule)), None) if get_origin(hint) is Annotated else None
            rule = marked or narrower.get(p.name) or rule_of_type(hint)
            default = _plain(p.default)
            usable = default is not p.empty and rule is not None and rule.accepts(default)
            taken[p.name] = Setting(rule, default if usable else p.empty, usable and owner.__module__.startswith("autoencoder."))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return taken, False
    return taken, True


# The evaluation's own settings (conf/evaluation/default.yaml; its measures are nodes): evaluate's
# top-level keys, and a training run's under `evaluation` (evaluate=true).
EVALUATION: dict[str, Rule] = {
    "batch_size": integer(1),
    "seed": integer(0, 2**32 - 1),
    "measures.*": Rule(lambda v: v is None or (isinstance(v, DictConfig) and "_target_" in v), "a measure config with a _target_"),
}

# Every command's: where it writes, and its progress lines where stdout is not a terminal (conf/progress/).
RUN: dict[str, Rule] = {
    "output_dir": text(),
    "runs_in": text(),
    "progress.every_seconds": number(above=0),
    "progress.every_fraction": number(above=0, high=1),
}
# The `data.*` a command on a checkpoint is given: keys of the run's own data, checked against its
# dataset's settings once merged with them (autoencoder.runs.checkpoints.datamodule_for).
RUN_DATA: dict[str, Rule] = {"data.*": Rule(lambda v: True, "a setting of the run's data")}

RULES: dict[str, Rule] = {
    # the training config's own keys (conf/config.yaml); its groups' nodes have their classes' settings
    **RUN,
    "prior": Rule(lambda v: v is None, "a prior chosen as a group option (prior=standard, vamp or mixture) or null"),
    "noise": number(0),
    "loss": one_of("mse", "bce"),
    "seed": integer(0, 2**32 - 1),
    "channels_last": boolean(),
    "compile": one_of(*COMPILE_MODES),
    "threads": integer(1, null=True),
    "ckpt_path": text(null=True),
    "resume": text(null=True),
    "resume_unfinished": boolean(),
    "evaluate": boolean(),
    **{f"evaluation.{key}": rule for key, rule in EVALUATION.items()},
    "interrupts.signals": strings(empty=True, options=STOP_SIGNALS),
    "interrupts.requeue_signals": strings(empty=True, options=STOP_SIGNALS),
    # what the module reads beside a scheduler's own arguments (autoencoder.models.module)
    "scheduler.steps_argument": text(),
    "scheduler.lightning.interval": one_of("step", "epoch"),
    "scheduler.lightning.frequency": integer(1),
    "scheduler.lightning.monitor": text(),
}

# Nodes whose keys are not user settings: Hydra's own, what a run notes of its launch
# (autoencoder.training.launch), and the module's links to other nodes (resolved in a run's config.yaml).
SKIPPED = ("hydra", "launch", "module.net", "module.variant", "module.corruption", "module.optimizer", "module.scheduler")


def _rule(path: str, key: str, rules: Mapping[str, Rule]) -> Rule | None:
    """The rule of `key` in the node at `path` (`measures.`): its own, or a pattern's whose `*`
    stands for one name (`measures.*`; a name may hold dots, a benchmark's recipe names do)."""
    if f"{path}{key}" in rules:
        return rules[f"{path}{key}"]
    names = [*path.split(".")[:-1], str(key)]

    def matches(pattern: str) -> bool:
        parts = pattern.split(".")
        return "*" in pattern and len(parts) == len(names) and all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts, strict=True))

    return next((rule for pattern, rule in rules.items() if matches(pattern)), None)


def _value(node: DictConfig, key: str) -> object:
    """A setting's value as its rule sees it: a list as a list; a mandatory value `???` (its command says so)."""
    if OmegaConf.is_missing(node, key):
        return "???"
    value = node[key]
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value


def _check(node: DictConfig, path: str, rules: Mapping[str, Rule]) -> None:
    """Check the settings under `node` (at `path`, `data.` say) and fill in its class's defaults."""
    target = node.get("_target_") if "_target_" in node and not OmegaConf.is_interpolation(node, "_target_") else None
    try:
        taken, open_ = settings(target) if isinstance(target, str) else ({}, False)
    except Exception as exc:  # noqa: BLE001 - whatever keeps it from loading, the _target_ is the problem
        raise UserError(f"{path}_target_: cannot load {target} ({str(exc).splitlines()[0].rstrip(':')})") from exc
    for key in node:
        name = f"{path}{key}"
        if str(key).startswith("_") or name in SKIPPED or OmegaConf.is_interpolation(node, key):
            continue
        value = _value(node, key)
        rule = taken[key].rule if key in taken else _rule(path, key, rules)
        if isinstance(value, DictConfig) and (rule is None or "_target_" in value):
            _check(value, f"{name}.", rules)
        elif rule is not None and not rule.accepts(value):
            raise UserError(f"{name} must be {rule.allowed}, got {value!r}")
        elif rule is None and key not in taken and not open_:
            raise UserError(_unknown(name, path, target, taken, rules))
        elif isinstance(value, list):  # a list of nodes (a chain's steps): each checked as a node
            for i, item in enumerate(node[key]):
                if isinstance(item, DictConfig) and "_target_" in item:
                    _check(item, f"{name}.{i}.", rules)
    with open_dict(node):
        for key, setting in taken.items():
            if key not in node and setting.filled:
                node[key] = setting.default


def _unknown(name: str, path: str, target: str | None, taken: Mapping[str, Setting], rules: Mapping[str, Rule]) -> str:
    close = closest(name, [f"{path}{key}" for key in taken] + [key for key in rules if key.startswith(path) and "*" not in key])
    if close:
        hint = f"did you mean {' or '.join(close)}?"
    else:
        hint = f"its settings: {', '.join(taken)}" if target else "none is close to it (--cfg job lists the config)"
    whose = f" (not a setting of {target.rsplit('.', 1)[-1]})" if target else ""
    return f"unknown key '{name}'{whose}: {hint}"


def validate(cfg: DictConfig, rules: Mapping[str, Rule] = RULES, prefix: str = "") -> None:
    """Check every setting of a composed config against its nodes' classes and its command's
    `rules`, and fill in the defaults its nodes leave out; raise a UserError for the first bad or
    unknown one. With a `prefix` (`data.`), `cfg` is that node alone: its own keys are checked,
    not the cross-checks."""
    _check(cfg, prefix, rules)
    for check in CROSS_CHECKS if not prefix else ():
        check(cfg)


def _noise_fits_corruption(cfg: DictConfig) -> None:
    """The noise level of the corruption, or of each step of a chain of them, within its class's range."""
    if not cfg.get("corruption"):
        return
    for node in (cfg.corruption, *cfg.corruption.get("steps", ())):
        corruption = get_class(node._target_)
        noise = node.get("noise")
        if _is_number(noise) and noise > corruption.max_noise:
            raise UserError(f"noise must be a number in [0, {corruption.max_noise:g}] for the {corruption.__name__} corruption, got {noise!r}")


def _precision_fits_accelerator(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer")
    if trainer and trainer.precision == "16-mixed" and not uses_gpu(trainer.accelerator):
        raise UserError("trainer.precision=16-mixed needs a GPU (fp16 autocast is not supported on the CPU); use bf16-mixed or 32-true")


def _setting(node: DictConfig, key: str) -> object:
    """A node's setting: its config's value, else its class's default (a library's, not filled in)."""
    return node[key] if key in node else settings(node._target_)[0][key].default


def _schedule_has_an_end(cfg: DictConfig) -> None:
    scheduler, trainer = cfg.get("scheduler"), cfg.get("trainer")
    if scheduler and scheduler.get("steps_argument") and trainer and _setting(trainer, "max_epochs") in (None, -1) and _setting(trainer, "max_steps") == -1:
        raise UserError(f"a per-step schedule ({scheduler._target_.rsplit('.', 1)[-1]}) needs the run's length: set trainer.max_epochs or trainer.max_steps")


def _requeue_signals_stop_the_run(cfg: DictConfig) -> None:
    interrupts = cfg.get("interrupts")
    outside = [name for name in interrupts.requeue_signals if name not in interrupts.signals] if interrupts else []
    if outside:
        signals = ", ".join(interrupts.signals) or "none"
        raise UserError(f"interrupts.requeue_signals must be among interrupts.signals ({signals}), got {outside[0]}")


def _model_fits_data(cfg: DictConfig) -> None:
    model, data = cfg.get("model"), cfg.get("data")
    if model and data and "input_shape" in model and "image_shape" in data:
        shape, images = list(model.input_shape), list(data.image_shape)
        if shape != images:
            raise UserError(f"model.input_shape must be the data's image shape {images} (data.image_shape), got {shape}")


def _variant_fits_options(cfg: DictConfig) -> None:
    variant, data = cfg.get("variant"), cfg.get("data")
    if not variant:
        return
    kind = get_class(variant._target_)
    if getattr(kind, "double_backward", False) and cfg.get("compile"):
        raise UserError("variant=contractive needs compile=false: its Jacobian penalty takes a double backward, which torch.compile does not support")
    if getattr(kind, "generative", False) and data and data.get("binarize") and cfg.get("loss") == "mse":
        raise UserError("variant=vae with data.binarize=true needs loss=bce: a Gaussian likelihood of binary images is no likelihood in nats")


def _prior_fits_variant(cfg: DictConfig) -> None:
    """A prior is a setting of the variants that take one (their YAML links `prior`); on any other
    it would be silently unused."""
    prior, variant = cfg.get("prior"), cfg.get("variant")
    if prior and variant and "prior" not in settings(variant._target_)[0]:
        takers = ", ".join(p.stem for p in sorted((CONFIG_DIR / "variant").glob("*.yaml")) if "prior" in OmegaConf.load(p))
        name, kind = prior._target_.rsplit(".", 1)[-1], variant._target_.rsplit(".", 1)[-1]
        raise UserError(f"prior ({name}) is a setting of the variants with a prior ({takers}); the {kind} variant has none: pick one of those, or no prior")


CROSS_CHECKS = (
    _model_fits_data,
    _variant_fits_options,
    _prior_fits_variant,
    _noise_fits_corruption,
    _precision_fits_accelerator,
    _schedule_has_an_end,
    _requeue_signals_stop_the_run,
)
