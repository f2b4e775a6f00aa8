"""Runs that stop when told to: a scheduler's SIGTERM, Ctrl-C (SIGINT) or SLURM's warning before
the time limit (SIGUSR1, or SIGUSR2 as submitit asks for it) ends a run at the next step boundary
with a checkpoint of that moment, instead of killing it mid-step or letting it exit 0 as if it had
finished.

`SignalListener` only records the first signal (a second one ends the process at once, by the
signal's default action: every file the framework writes is replaced atomically, so nothing is
left half written). `StopOnSignal` acts on it between steps: it saves `interrupted.ckpt` (weights,
optimizer, loop position, the data order's position, RNG states) and raises `Interrupted`, which
the train command turns into exit code 128 + the signal's number, the shell's convention. Under
SLURM a requeue signal also puts the job back in the queue (`scontrol requeue`, as Lightning's
SLURM plugin does, but at a step boundary); the requeued job resumes in its own folder
(`autoencoder.training.run.train`). While a run trains, these handlers stand in for submitit's.

Lightning installs its own SIGTERM handler at the start of every fit and test (it would end the
run with exit code 0), so the listener installs its handlers again once Lightning has.
"""

import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import lightning as L
from typing_extensions import override

from autoencoder.utils.errors import Interrupted, signal_name

log = logging.getLogger(__name__)


class SignalListener:
    """Within `with`, records the first of `signals` the process receives; the previous handlers
    come back at the end. Outside the main thread (where Python cannot set handlers) it records
    nothing and the signals keep their previous handlers."""

    def __init__(self, signals: list[str]) -> None:
        self.signals = [signal.Signals[name] for name in signals]
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "SignalListener":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.getsignal(s) for s in self.signals}
            self.listen()
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def listen(self) -> None:
        """(Re)install the handlers, over whatever replaced them since."""
        for signum in self._previous:
            if signal.getsignal(signum) != self._handle:
                signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:  # the second one: stop now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        # os.write, not print: a handler may run in the middle of a print to the same stream.
        os.write(2, f"\n{signal_name(signum)} received: stopping after the current step (send it again to stop at once)\n".encode())


def slurm_job_id() -> str | None:
    """This SLURM job's id as scontrol names it (`<array job>_<task>` for a job of an array)."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID")
    return job if job and re.fullmatch(r"[0-9_]+", job) else None


def requeued_by_slurm() -> bool:
    """True in a SLURM job that has been requeued (it runs the same command again)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


class StopOnSignal(L.Callback):
    """Stops the run between training steps once `listener` has a signal: mid-epoch after the
    optimizer step, or, when the signal comes during an epoch's last step or its validation, after
    that epoch's validation and checkpoints (an epoch boundary). It saves `checkpoint` (every process
    takes part, as Lightning requires) and raises Interrupted; for one of `requeue_signals` under
    SLURM it first asks SLURM to requeue the job.

    What makes the resumed run the run left alone is in every checkpoint (ResumeExactly)."""

    def __init__(self, listener: SignalListener, checkpoint: str | Path, requeue_signals: list[str] = ()) -> None:
        self.listener = listener
        self.checkpoint = Path(checkpoint)
        self.requeue_signals = [signal.Signals[name] for name in requeue_signals]

    def _stop_requested(self, trainer: L.Trainer) -> int | None:
        """The signal, once any process has one (all processes stop at the same step)."""
        received = self.listener.received
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(received is not None, all=False):
            return trainer.strategy.broadcast(received if received is not None else signal.SIGTERM, src=0)
        return received

    def _stop(self, trainer: L.Trainer, signum: int, batch: int) -> None:
        trainer.save_checkpoint(self.checkpoint, weights_only=False)
        requeued = None
        if signum in self.requeue_signals and trainer.is_global_zero and (job := slurm_job_id()):
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            requeued = job if done.returncode == 0 else None
            if requeued is None:
                log.warning("requeueing SLURM job %s failed (scontrol exit code %d): %s", job, done.returncode, done.stderr.strip())
        raise Interrupted(signum, trainer.current_epoch + 1, batch, trainer.global_step, str(self.checkpoint), requeued)

    @override
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.listener.listen()

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.listener.listen()

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.listener.listen()

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        mid_accumulation = (batch_idx + 1) % trainer.accumulate_grad_batches != 0  # its gradients are in no checkpoint
        if not last_of_epoch and not mid_accumulation and (signum := self._stop_requested(trainer)) is not None:
            self._stop(trainer, signum, batch_idx + 1)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (signum := self._stop_requested(trainer)) is not None:
            self._stop(trainer, signum, trainer.num_training_batches)

    @override
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if (signum := self._stop_requested(trainer)) is not None:  # the fit is done: its last checkpoint resumes
            raise Interrupted(signum, trainer.current_epoch, None, trainer.global_step, None)
