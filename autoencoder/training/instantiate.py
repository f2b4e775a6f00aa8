"""Callbacks and loggers built from config (`conf/callbacks/`, `conf/logger/`).

Each callback is a named entry with a `_target_`; an entry set to null (e.g. `early_stopping=none`)
or removed on the command line (`~callbacks.<name>`) is simply not built, and
`+callbacks.<name>._target_=<class>` adds one.
"""

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from autoencoder.utils.errors import UserError


def instantiate_callbacks(callbacks: DictConfig | None) -> list[L.Callback]:
    """The callbacks of the config's `callbacks` node, in its order."""
    built = []
    for name, spec in (callbacks or {}).items():
        if not spec:  # null, or an empty option such as early_stopping=none
            continue
        if not isinstance(spec, DictConfig) or "_target_" not in spec:
            raise UserError(f"callbacks.{name} must be a callback config with a _target_, got {spec!r}")
        built.append(instantiate(spec))
    return built


def instantiate_logger(logger: DictConfig | None) -> Logger | None:
    """The configured logger, or None. A logger whose optional package is missing (WandbLogger,
    MLFlowLogger) gets a line naming the project's extra that installs it."""
    if not logger:
        return None
    try:
        return instantiate(logger)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, ModuleNotFoundError):
            extra = logger._target_.rsplit(".", 1)[-1].lower().removesuffix("logger")  # WandbLogger -> wandb
            raise UserError(f"logger={extra} needs a package that is not installed ({exc.__cause__}); install it with: pip install -e '.[{extra}]'") from exc
        raise
