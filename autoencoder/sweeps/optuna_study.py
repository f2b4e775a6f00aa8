"""What the Optuna search needs from Optuna, on its public API: the search space, the study's queue
of planned trials and the verdict on a finished job (the Hydra side is hydra_plugins/autoencoder_optuna;
the storage is autoencoder.sweeps.storage).

The search space is written in Hydra's sweep syntax (`choice(2, 8)`, `interval(1e-4, 1e-2)`,
`tag(log, interval(...))`, `tag(int, interval(1, 64))`, `range(1, 5)`), in `hydra.sweeper.params` or on the command line; each
swept key becomes an Optuna distribution, and every other override is passed to each trial as is.
"""

import math
from datetime import datetime

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from autoencoder.runs.record import RunRecord, Status
from autoencoder.utils.cli import as_override
from autoencoder.utils.errors import UserError


def _distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one swept key."""
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(override.sweep_iterator()))
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values) and len(values) > 1:
            return IntDistribution(values[0], values[-1], step=values[1] - values[0])
        return CategoricalDistribution(values)
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        if "int" in sweep.tags:  # Hydra reads interval bounds as floats
            return IntDistribution(int(sweep.start), int(sweep.end), log=log)
        return FloatDistribution(sweep.start, sweep.end, log=log)
    raise UserError(f"{override.input_line} is not a sweep Optuna can search; use choice(...), range(...) or interval(...)")


def search_space(params: dict[str, str], arguments: list[str]) -> tuple[list[str], dict[str, BaseDistribution]]:
    """The overrides every trial gets and the distributions Optuna samples. A key set on the
    command line replaces its entry in `params`: a sweep there is searched, a plain value is fixed."""
    parser = OverridesParser.create()
    given = parser.parse_overrides(arguments)
    given_keys = {o.key_or_group for o in given}
    configured = [o for o in parser.parse_overrides([as_override(f"{key}={value}") for key, value in params.items()]) if o.key_or_group not in given_keys]
    overrides = [*configured, *given]
    space = {o.key_or_group: _distribution(o) for o in overrides if o.is_sweep_override()}
    return [o.input_line for o in overrides if not o.is_sweep_override()], space


def trial_overrides(params: dict[str, object]) -> list[str]:
    """A trial's sampled values as command-line overrides."""
    return [as_override(f"{key}={value}") for key, value in params.items()]


def job_verdict(job: JobReturn) -> tuple[TrialState, float | None]:
    """What a finished job tells the study, from its run record (metrics.json): complete with its
    best val loss, pruned (it reported each epoch to its trial and the pruner stopped it), or
    failed (also a job without a record, or without a finite best val loss)."""
    if job.status != JobStatus.COMPLETED or (record := RunRecord.read(job.hydra_cfg.hydra.runtime.output_dir)) is None:
        return TrialState.FAIL, None
    if record.status is Status.PRUNED:
        return TrialState.PRUNED, None
    value = record.best_val_loss
    if record.status is Status.COMPLETED and isinstance(value, (int, float)) and math.isfinite(value):
        return TrialState.COMPLETE, float(value)
    return TrialState.FAIL, None


def plan(study: optuna.Study, n_trials: int) -> None:
    """Put `n_trials` trials in the study's queue, their values left to the sampler. Workers run
    trials only from the queue, so the study ends with exactly the trials its workers planned, even
    when a lost worker's trials are run by the others."""
    for _ in range(n_trials):
        study.enqueue_trial({}, skip_if_exists=False)


def claim(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int | None:
    """The storage id of a queued trial this worker now runs, or None when the queue is empty.
    Moving a trial from WAITING to RUNNING succeeds for one worker only (the storage checks its
    state in the same transaction), so no trial is run twice."""
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
                return waiting._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def sample(study: optuna.Study, trial_id: int, space: dict[str, BaseDistribution]) -> optuna.Trial:
    """The claimed trial with its values for the search space: sampled, or the failed trial's own
    when it is a retry."""
    trial = optuna.Trial(study, trial_id)
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            trial.suggest_categorical(name, distribution.choices)
        elif isinstance(distribution, IntDistribution):
            trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
        else:
            trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    return trial


def running_since(study: optuna.Study, started: datetime) -> bool:
    """Whether a trial claimed after `started` is still running: a worker whose queue is empty
    waits for those, as one of them may be a lost worker's, to be failed and queued again."""
    return any(t.datetime_start and t.datetime_start >= started for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
