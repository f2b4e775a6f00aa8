"""What the Optuna search needs from Optuna, on its public API: the study, the search space and the
verdict on a finished job (the Hydra side is hydra_plugins/autoencoder_optuna).

The search space is written in Hydra's sweep syntax (`choice(2, 8)`, `interval(1e-4, 1e-2)`,
`tag(log, interval(...))`, `tag(int, interval(1, 64))`, `range(1, 5)`), in `hydra.sweeper.params` or on the command line; each
swept key becomes an Optuna distribution, and every other override is passed to each trial as is.
"""

import math
import time

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from autoencoder.runs.record import RunRecord, Status
from autoencoder.utils.cli import as_override
from autoencoder.utils.errors import UserError


def open_storage(url: str | None) -> optuna.storages.RDBStorage:
    """The study's database. SQLite waits up to a minute for a lock, so that workers sharing one
    file queue instead of failing; any other URL is a database server (PostgreSQL, MySQL)."""
    if not isinstance(url, str) or "://" not in url:
        raise UserError(f"hydra.sweeper.storage must be a database URL (sqlite:///<file>, postgresql://<user>@<host>/<db>), got {url!r}")
    options = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=options)
        except SQLAlchemyError as exc:
            # Workers that open a new database at once race to create its tables and record their
            # version; the losers fail once and find them made when they try again.
            if attempt < 2:
                time.sleep(1 + attempt)
                continue
            error = exc
        except (ImportError, ValueError) as exc:  # a URL of a database whose driver is not installed, a bad URL
            error = exc
        reason = " ".join(str(error).split()).split(" (Background on this error")[0]
        raise UserError(f"hydra.sweeper.storage={url} cannot be opened ({reason}); give a database URL this machine can write") from error


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
