"""An Optuna sweeper for Hydra whose trials can be pruned (conf/hydra/sweeper/optuna.yaml).

Hydra's sweeper API hands a sweeper only the jobs' return values, so a sweeper that ran trials by
itself could not let Optuna stop one halfway. This one asks the study for a batch of trials, runs
them as jobs through the configured launcher (one at a time, in parallel with joblib, or on SLURM),
and gives each job its trial's storage id as `hydra.sweeper.trial`; the job reports its validation
loss to that trial every epoch and stops when the pruner says so
(autoencoder.sweeps.pruning.OptunaPruning). When the batch ends, each trial is told what its job's
metrics.json says. Several processes may run this on one study at once: each asks its own trials.

Hydra imports every plugin module whenever a command starts, so the project's modules (and
Lightning behind them) are imported only when a search runs.
"""

import logging
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
        trial: int | None = None,  # set by the sweeper for each job, never by a user
    ) -> None:
        self.sampler, self.pruner, self.direction, self.study_name, self.storage = sampler, pruner, direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.params = {str(k): str(v) for k, v in (params or {}).items()}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        from autoencoder.sweeps.optuna_study import job_verdict, open_storage, search_space, trial_overrides
        from autoencoder.utils.errors import UserError
        from autoencoder.workflows.jobs import parallel_workers

        self._check()
        fixed, space = search_space(self.params, arguments)
        if not space:
            raise UserError("the Optuna search has nothing to search: give hydra.sweeper.params, or a key=choice(...) or key=interval(...) override")
        storage = open_storage(self.storage)
        earlier = len(optuna.load_study(study_name=self.study_name, storage=storage).trials) if self.study_name in optuna.get_all_study_names(storage) else 0
        # A seeded sampler starts where the study is: a resumed search must not repeat its first trials.
        seed = self.sampler.get("seed")
        sampler = instantiate(self.sampler, seed=None if seed is None else seed + earlier)
        study = optuna.create_study(
            storage=storage, sampler=sampler, pruner=instantiate(self.pruner), study_name=self.study_name, direction=self.direction, load_if_exists=True
        )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        batch = self.n_jobs or parallel_workers(self.config.hydra.launcher)
        log.info("Optuna study %r in %s: %d trials so far; %d more, %d at a time", self.study_name, self.storage, earlier, self.n_trials, batch)
        done = 0
        while done < self.n_trials:
            trials = [study.ask(space) for _ in range(min(batch, self.n_trials - done))]
            # A job finds its trial by Optuna's storage id: that is what optuna.trial.Trial takes.
            jobs = [(*fixed, *trial_overrides(t.params), f"hydra.sweeper.trial={t._trial_id}") for t in trials]
            for trial, job in zip(trials, self.launcher.launch(jobs, initial_job_idx=done), strict=True):
                state, value = job_verdict(job)
                study.tell(trial, value, state=state)
            done += len(trials)
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            log.info("best trial so far: #%d, value %.5f, %s", study.best_trial.number, study.best_value, " ".join(trial_overrides(study.best_params)))

    def _check(self) -> None:
        from autoencoder.config.validation import integer, one_of
        from autoencoder.utils.errors import UserError

        settings = {"n_trials": integer(1), "n_jobs": integer(1, null=True), "direction": one_of("minimize", "maximize")}
        for name, rule in settings.items():
            value = getattr(self, name)
            if not rule.accepts(value):
                raise UserError(f"hydra.sweeper.{name} must be {rule.allowed}, got {value!r}")
