"""An Optuna sweeper for Hydra whose trials can be pruned (conf/hydra/sweeper/optuna.yaml).

Hydra's sweeper API hands a sweeper only the jobs' return values, so a sweeper that ran trials by
itself could not let Optuna stop one halfway. This one queues its `n_trials` in the study, claims
a batch of queued trials, runs them as jobs through the configured launcher (one at a time, in
parallel with joblib, or on SLURM),
and gives each job its trial's storage id as `hydra.sweeper.trial`; the job reports its validation
loss to that trial every epoch and stops when the pruner says so
(autoencoder.sweeps.pruning.OptunaPruning). When the batch ends, each trial is told what its job's
metrics.json says. Several processes may run this on one study at once, on many machines: they
share the queue, a trial of a worker that died is queued again (autoencoder.sweeps.heartbeat), and
a storage that went away is waited for (autoencoder.sweeps.storage).

Hydra imports every plugin module whenever a command starts, so the project's modules (and
Lightning behind them) are imported only when a search runs.
"""

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: str,
        study_name: str,
        storage: str,
        n_trials: int,
        n_jobs: int | None,
        params: DictConfig | None,
        heartbeat: int | None,
        grace_period: int,
        retries: int,
        reconnect_timeout: float,
        trial: int | None = None,  # set by the sweeper for each job, never by a user
    ) -> None:
        self.sampler, self.pruner, self.direction, self.study_name, self.storage = sampler, pruner, direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.heartbeat, self.grace_period, self.retries, self.reconnect_timeout = heartbeat, grace_period, retries, reconnect_timeout
        self.params = {str(k): str(v) for k, v in (params or {}).items()}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        from autoencoder.sweeps.optuna_study import job_verdict, plan, search_space, trial_overrides
        from autoencoder.sweeps.storage import heartbeat_of, open_storage
        from autoencoder.utils.errors import UserError
        from autoencoder.workflows.jobs import parallel_workers

        self._check()
        fixed, space = search_space(self.params, arguments)
        if not space:
            raise UserError("the Optuna search has nothing to search: give hydra.sweeper.params, or a key=choice(...) or key=interval(...) override")
        self.started = datetime.now()
        self.store = open_storage(self.storage, self.heartbeat, self.grace_period, self.retries)
        self.beat = heartbeat_of(self.store)
        names = self._patiently(lambda: optuna.get_all_study_names(self.store), "opening the study")
        opened = self.study_name in names and self._patiently(lambda: optuna.load_study(study_name=self.study_name, storage=self.store), "opening the study")
        earlier = len(opened.trials) if opened else 0
        # A seeded sampler starts where the study is: a resumed search must not repeat its first trials.
        seed = self.sampler.get("seed")
        sampler = instantiate(self.sampler, seed=None if seed is None else seed + earlier)
        pruner = instantiate(self.pruner)
        study = self._patiently(
            lambda: optuna.create_study(
                storage=self.store, sampler=sampler, pruner=pruner, study_name=self.study_name, direction=self.direction, load_if_exists=True
            ),
            "opening the study",
        )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        batch = self.n_jobs or parallel_workers(self.config.hydra.launcher)
        self._patiently(lambda: plan(study, self.n_trials), "queueing its trials")
        log.info("Optuna study %r in %s: %d trials before; %d more queued, run %d at a time", self.study_name, self.storage, earlier, self.n_trials, batch)
        done = 0
        while trials := self._next_batch(study, space, batch):
            # A job finds its trial by Optuna's storage id: that is what optuna.trial.Trial takes.
            jobs = [(*fixed, *trial_overrides(t.params), f"hydra.sweeper.trial={t._trial_id}") for t in trials]
            with self._beating([t._trial_id for t in trials]):
                returns = self.launcher.launch(jobs, initial_job_idx=done)
            for trial, job in zip(trials, returns, strict=True):
                state, value = job_verdict(job)
                self._patiently(lambda t=trial, s=state, v=value: study.tell(t, v, state=s, skip_if_finished=True), f"recording trial {trial.number}")
            done += len(trials)
        if not done:
            log.info("this worker ran no trial: other workers had claimed every queued trial of the study")
        trials = self._patiently(lambda: study.trials, "reading the study")
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            log.info("best trial so far: #%d, value %.5f, %s", study.best_trial.number, study.best_value, " ".join(trial_overrides(study.best_params)))

    def _next_batch(self, study, space, batch: int) -> list:
        """Up to `batch` trials claimed from the queue. With none left but trials still running
        (other workers'), it waits, failing the stale ones: a lost worker's trial comes back to the
        queue after the grace period, and a live worker must be there to run it."""
        import optuna

        from autoencoder.sweeps.optuna_study import claim, running_since, sample

        while True:
            if self.beat:
                self._patiently(lambda: optuna.storages.fail_stale_trials(study), "failing lost trials")
            trials = []
            while len(trials) < batch and (trial_id := self._patiently(lambda: claim(study, self.store), "claiming a trial")) is not None:
                trials.append(self._patiently(lambda i=trial_id: sample(study, i, space), "sampling a trial"))
            if trials or not self.beat or not self._patiently(lambda: running_since(study, self.started), "watching the running trials"):
                return trials
            time.sleep(min(self.beat, self.grace_period / 4))

    def _beating(self, trial_ids: list[int]) -> AbstractContextManager:
        from autoencoder.sweeps.heartbeat import Heartbeat

        return Heartbeat(self.store, trial_ids, self.beat) if self.beat else nullcontext()

    def _patiently(self, call, what: str):
        from autoencoder.sweeps.storage import patiently

        return patiently(call, self.storage, self.reconnect_timeout, what)

    def _check(self) -> None:
        from autoencoder.config.validation import integer, number, one_of
        from autoencoder.utils.errors import UserError

        settings = {
            "n_trials": integer(1),
            "n_jobs": integer(1, null=True),
            "direction": one_of("minimize", "maximize"),
            "heartbeat": integer(1, null=True),
            "grace_period": integer(1),
            "retries": integer(0),
            "reconnect_timeout": number(0),
        }
        for name, rule in settings.items():
            value = getattr(self, name)
            if not rule.accepts(value):
                raise UserError(f"hydra.sweeper.{name} must be {rule.allowed}, got {value!r}")
        if self.heartbeat and self.grace_period <= self.heartbeat:
            raise UserError(f"hydra.sweeper.grace_period must be longer than hydra.sweeper.heartbeat ({self.heartbeat} s), got {self.grace_period}")
