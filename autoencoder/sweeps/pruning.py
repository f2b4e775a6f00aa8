"""A run that is one trial of an Optuna search reports its validation loss to the trial after every
validation, and stops when the study's pruner says the trial is hopeless.

conf/hparams_search/optuna.yaml adds this callback; the Optuna sweeper tells each job its trial
through `hydra.sweeper.trial`. On pruning it raises `optuna.TrialPruned`, which the run records in
metrics.json as `"status": "pruned"` (autoencoder.training.run); the sweeper then tells the study.
A report that cannot reach the storage (a database restart) is skipped with a warning: the run goes
on, and the sweeper records its result once the storage is back.
"""

import logging
from functools import partial

import lightning as L
import optuna
from typing_extensions import override

from autoencoder.sweeps.storage import UNREACHABLE, open_storage, patiently
from autoencoder.utils.errors import UserError

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Report `monitor` at the end of each validation to trial `trial` (Optuna's storage id) of the
    study; the step is the epoch, counted from 0. `pruner` must be the search's own: it decides
    here, in the job. Under DDP the first process reports and decides, and every process stops
    together."""

    def __init__(
        self, storage: str, study_name: str, trial: int | None, pruner: optuna.pruners.BasePruner, monitor: str = "val/loss", reconnect_timeout: float = 0
    ) -> None:
        if trial is None:
            raise UserError("hparams_search=optuna runs a search: start it with -m (python -m autoencoder.train -m hparams_search=optuna)")
        self.storage, self.study_name, self.trial_id, self.pruner, self.monitor = storage, study_name, trial, pruner, monitor
        self.reconnect_timeout = reconnect_timeout
        self._trial: optuna.trial.Trial | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and self._trial is None:
            storage = open_storage(self.storage, patience=self.reconnect_timeout, made=True)
            load = partial(optuna.load_study, study_name=self.study_name, storage=storage, pruner=self.pruner)
            study = patiently(load, self.storage, self.reconnect_timeout, "opening its trial")
            self._trial = optuna.trial.Trial(study, self.trial_id)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                raise UserError(f"the Optuna search monitors {self.monitor}, which this run does not log")
            try:
                self._trial.report(value.item(), step=trainer.current_epoch)
                prune = self._trial.should_prune()
            except UNREACHABLE as exc:
                log.warning("epoch %d not reported to the Optuna study (its storage cannot be reached: %s); training on", trainer.current_epoch + 1, exc)
        if trainer.strategy.broadcast(prune):
            raise optuna.TrialPruned(f"pruned after epoch {trainer.current_epoch + 1}")
