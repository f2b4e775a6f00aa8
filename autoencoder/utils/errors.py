"""User-facing errors: input the user can fix is reported as one clear line, never a traceback.

Code anywhere in the package raises `UserError` for such input (config values, paths, data files,
checkpoints); `user_message` finds it, or Hydra's own composition error, inside whatever exception
reached the command (autoencoder.utils.cli prints it).
"""

import signal

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException


class UserError(Exception):
    """Input the user can fix; its message says what was wrong and what is allowed."""


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def stop_point(epoch: int, batch: int | None) -> str:
    """Where a run stopped, as the command and the sweep summary say it."""
    return "while testing" if batch is None else f"in epoch {epoch} after batch {batch}"


class Interrupted(BaseException):
    """A run stopped by a signal, at a step boundary (`batch` of `epoch`, 1-based; an epoch's last
    batch is its end) or while testing (`batch` None), with the checkpoint it saved, if any.
    A BaseException, so that nothing on the way out (a sweep's job, Hydra) takes it for one job's
    error and goes on with the next; the command exits with 128 + the signal's number."""

    def __init__(self, signum: int, epoch: int, batch: int | None, step: int, checkpoint: str | None, requeued: str | None = None) -> None:
        super().__init__(signum, epoch, batch, step, checkpoint, requeued)
        self.signum, self.epoch, self.batch, self.step, self.checkpoint, self.requeued = signum, epoch, batch, step, checkpoint, requeued
        self.resume_command: str | None = None  # set by the run that knows its folder

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        step = "" if self.batch is None else f" (step {self.step})"
        parts = [f"stopped by {signal_name(self.signum)} {stop_point(self.epoch, self.batch)}{step}"]
        parts += [f"checkpoint {self.checkpoint}"] if self.checkpoint else []
        parts += [f"SLURM job {self.requeued} requeued"] if self.requeued else []
        parts += [f"resume with: {self.resume_command}"] if self.resume_command else []
        return "; ".join(parts)


class Stopped(BaseException):
    """A command stopped by SIGINT (Ctrl-C) or SIGTERM outside a training, which stops at a step
    boundary instead (`Interrupted`). The command's signal handler raises it wherever the command
    is, so that work under way writes down what it has on the way out (the likelihood pass keeps
    its progress). Not a KeyboardInterrupt, which Lightning turns into exit code 1: the command
    exits with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return "Ctrl-C" if self.signum == signal.SIGINT else signal_name(self.signum)


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and the ones it was raised from, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user caused, or None for a genuine bug."""
    chain = exception_chain(exc)
    for e in chain:
        if isinstance(e, UserError):
            return str(e)
    for e in chain:
        if isinstance(e, MissingConfigException) and e.options is not None:
            group, _, option = (e.missing_cfg_file or "").rpartition("/")
            allowed = ", ".join(sorted(e.options))
            return f"unknown {group or 'config'} option '{option}' (allowed: {allowed})"
    for e in chain:
        if isinstance(e, (HydraException, OmegaConfBaseException)):
            return " ".join(str(e).split())
    for e in chain:  # a folder that cannot be written, a full disk, ...
        if isinstance(e, OSError) and e.filename:
            return f"cannot write or read {e.filename}: {e.strerror or type(e).__name__}; pick a folder you can write to, or free space"
    return None
