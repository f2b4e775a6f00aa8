"""The heartbeat of the trials a worker is running, so that a lost worker's trials do not stay
RUNNING forever.

Optuna records heartbeats only inside `Study.optimize`; the sweeper asks and tells instead (its
jobs run through a launcher), so it beats itself: while a batch runs, a thread records a heartbeat
for each of its trials every `interval` seconds. If the worker dies (SIGKILL, a lost node), the
beats stop, and after the storage's grace period the next worker that looks
(`optuna.storages.fail_stale_trials`) fails the trial and queues it again (conf/hydra/sweeper/optuna.yaml).
"""

import logging
import threading
from types import TracebackType

import optuna

from autoencoder.sweeps.storage import UNREACHABLE

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(storage, trial_ids, interval):` beats for the trials until the block ends.
    A beat that cannot reach the storage is skipped: a short outage must not stop the search."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_ids: list[int], interval: float) -> None:
        self.storage, self.trial_ids, self.interval = storage, trial_ids, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while True:
            try:
                for trial_id in self.trial_ids:
                    self.storage.record_heartbeat(trial_id)
            except UNREACHABLE as exc:
                log.warning("a heartbeat could not reach the study's storage (%s); trying again in %g s", type(exc).__name__, self.interval)
            if self._stop.wait(self.interval):
                return
