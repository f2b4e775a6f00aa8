"""How a training job was launched, as Hydra knows it while the job runs and a run folder cannot
tell later: the option chosen in each config group, the keys set on the command line and, in a
sweep, the keys the sweep varies, whose values name the job among its sweep's
(`model.latent_dim=2,noise=0.3`). `train_job` keeps it in the run's config as `launch`: the
HParams tab (autoencoder.training.hparams) and the TensorBoard folder (conf/logger/tensorboard.yaml)
are made from it, and a resumed run finds its original's in config.yaml.
"""

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf


def _parsed(overrides) -> list[Override]:
    """Overrides that set a key (`~key` deletions set none)."""
    return [o for o in OverridesParser.create().parse_overrides(list(overrides)) if not o.is_delete()]


def _swept_keys(hydra: DictConfig, keys: list[str]) -> set[str]:
    """The keys a sweep varies: the sweep overrides of its command (`noise=0,0.3`, `lr=interval(...)`,
    from the multirun.yaml Hydra's sweepers write before launching) and its sweeper's `params`.
    Without that file, every key of the job's command line."""
    multirun = Path(hydra.sweep.dir) / "multirun.yaml"
    if not multirun.is_file():
        return set(keys)
    command = OmegaConf.load(multirun).hydra.overrides.task
    return {o.key_or_group for o in _parsed(command) if o.is_sweep_override()} | set(hydra.sweeper.get("params") or {})


def launch(hydra: DictConfig) -> dict:
    """`groups` (group: option, Hydra's own and unset groups left out) and `keys` (set on the command
    line, in its order); in a sweep also `swept` (those of `keys` the sweep varies) and, when there are
    any, `name`: the job's swept overrides as the user wrote them, as Hydra's override_dirname does (a
    `/` in a value becomes `_`, so that it names one folder), with `sweep_dir`, the sweep's folder
    (absolute)."""
    job = _parsed(hydra.overrides.task)
    keys = [o.key_or_group for o in job]
    info = {"groups": {group: option for group, option in hydra.runtime.choices.items() if not group.startswith("hydra/") and option is not None}, "keys": keys}
    if hydra.mode == RunMode.MULTIRUN:
        swept = _swept_keys(hydra, keys)
        info["swept"] = [key for key in keys if key in swept]
        name = ",".join(sorted(o.input_line.lstrip("+") for o in job if o.key_or_group in swept)).replace("/", "_")  # `++key=` as `key=`
        if name:
            info |= {"name": name, "sweep_dir": str(Path(hydra.sweep.dir).absolute())}
    return info
