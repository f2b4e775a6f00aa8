"""Where an Optuna study lives (`hydra.sweeper.storage`), and what a worker does when it is gone.

Two kinds of storage: a database URL (SQLite for one machine, PostgreSQL or MySQL for workers on
many) and `journal:///<file>`, Optuna's journal file: an append-only log that workers on a shared
file system (NFS, Lustre) lock by file, the usual choice on a cluster without a database server.
The path follows SQLite's URL form: `journal:///outputs/optuna/s.log` is relative,
`journal:////scratch/s.log` absolute.

A database server can go away for a while (a restart, a network cut). A worker then waits for it
(`patiently`) instead of dying with a traceback and losing the trials it has finished; if it stays
away, the worker stops with one line that says so.
"""

import itertools
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import optuna
import sqlalchemy
from sqlalchemy.exc import SQLAlchemyError

from autoencoder.utils.errors import UserError

log = logging.getLogger(__name__)
JOURNAL = "journal:///"
# What a storage raises while it cannot be reached: Optuna wraps SQLAlchemy's errors in its own.
UNREACHABLE = (optuna.exceptions.StorageInternalError, SQLAlchemyError, OSError)
T = TypeVar("T")


def open_storage(
    url: str | None, heartbeat: int | None = None, grace_period: int | None = None, retries: int = 0, patience: float = 0, made: bool = False
) -> optuna.storages.BaseStorage:
    """The study's storage. With `heartbeat` (seconds; database storages only), a running trial
    whose worker has been silent for `grace_period` seconds is failed by the next worker that looks,
    and put back in the queue with the same parameters up to `retries` times. A database that cannot
    be reached is tried three times, or for `patience` seconds (a job, whose worker reached it).
    `made`: the worker has made and checked the database's tables, so a job skips that (it halves
    the cost of opening a PostgreSQL study)."""
    if not isinstance(url, str) or "://" not in url:
        raise UserError(f"hydra.sweeper.storage must be a database URL (sqlite:///<file>, postgresql://<user>@<host>/<db>) or journal:///<file>, got {url!r}")
    # Optuna calls the heartbeat, its retry and failing stale trials experimental; they are what a lost worker needs.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith(JOURNAL):
        return _journal(url)
    beats = {}
    if heartbeat:
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
        beats = {"heartbeat_interval": heartbeat, "grace_period": grace_period, "heartbeat_stale_trial_callback": retry}
    # SQLite waits up to a minute for a lock, so that workers sharing one file queue instead of
    # failing; a server's pooled connections are checked before use, so that one restart does not
    # leave every later query failing on a dead connection.
    sqlite = url.startswith("sqlite")
    options = {"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else {"pool_pre_ping": True}
    deadline = time.monotonic() + patience
    for attempt in itertools.count():
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=options, skip_compatibility_check=made, skip_table_creation=made, **beats)
            if sqlite:
                sqlalchemy.event.listen(storage.engine, "begin", _lock_sqlite)
            return storage
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            # Workers that open a new database at once race to create its tables and record their
            # version; the losers fail once and find them made when they try again. Optuna wraps
            # some of SQLAlchemy's errors (a server that is down) in its own: the reason is inside.
            if attempt < 2 or time.monotonic() < deadline:
                time.sleep(min(1 + attempt, 5))
                continue
            error = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
        except (ImportError, ValueError) as exc:  # a URL of a database whose driver is not installed, a bad URL
            error = exc
        raise UserError(f"hydra.sweeper.storage={url} cannot be opened ({_reason(error)}); give a database URL this machine can write") from error


def _lock_sqlite(connection: sqlalchemy.Connection) -> None:
    """Each transaction takes SQLite's write lock when it begins. Python's sqlite3 begins one only at
    the first write, so two workers could both read a queued trial as waiting and both claim it
    (Optuna checks the state and sets it in one transaction, which a server locks, not SQLite)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def heartbeat_of(storage: optuna.storages.BaseStorage) -> int | None:
    """Seconds between the heartbeats of a running trial; None for a storage without them (the journal file)."""
    return storage.get_heartbeat_interval() if isinstance(storage, optuna.storages.RDBStorage) else None


def _journal(url: str) -> optuna.storages.JournalStorage:
    path = Path(url.removeprefix(JOURNAL))
    try:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except OSError as exc:
        raise UserError(f"hydra.sweeper.storage={url} cannot be opened ({_reason(exc)}); give a journal file in a folder this machine can write") from exc


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()).split(" (Background on this error")[0]


def patiently(call: Callable[[], T], url: str, timeout: float, what: str) -> T:
    """`call()`, tried again every few seconds while the storage cannot be reached, for up to
    `timeout` seconds; then one UserError that says what the worker was doing."""
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        try:
            return call()
        except UNREACHABLE as exc:
            if time.monotonic() >= deadline:
                raise UserError(
                    f"lost the study's storage {url} for over {timeout:g} s while {what} ({_reason(exc)}); "
                    "the trials this worker finished before are in the study, and every job's metrics.json in its sweep folder"
                ) from exc
            if not warned:
                log.warning("the study's storage %s cannot be reached while %s (%s); waiting up to %g s for it", url, what, _reason(exc), timeout)
                warned = True
            time.sleep(2)
