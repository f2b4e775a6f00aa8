"""The record of a training run, its `metrics.json`: what the run reached (losses, epochs, speed,
checkpoints, each validation's val loss) and how it ended. The run writes it; resuming, the sweep
summary, the Optuna search, the anomaly table and the benchmarks read it. It is read and written
here alone, so that they all agree on its keys and on what each status means. It needs only the
standard library and autoencoder.utils: the readers that load no model (the sweep summary, the
benchmarks' tables) get no torch or Lightning through it.
"""

import json
import sys
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path

from autoencoder.utils.files import write_json

FILE = "metrics.json"

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.10 has no StrEnum: a str Enum that prints as its value is the same

    class StrEnum(str, Enum):
        __str__ = str.__str__
        __format__ = str.__format__


class Status(StrEnum):
    """How a run ended, in the order the sweep summary counts them. A record holds one of the
    first four; `unfinished` is a run folder without a record yet (a run still going, or killed)."""

    COMPLETED = "completed"
    PRUNED = "pruned"  # stopped by an Optuna search's pruner, untested
    INTERRUPTED = "interrupted"  # stopped by a signal, with a checkpoint to resume from
    FAILED = "failed"
    UNFINISHED = "unfinished"


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.PRUNED})  # a run in one of these has nothing left to train


@dataclass
class RunRecord:
    """A run's metrics.json, one field per key, in the file's order. Every run but a failed one
    writes the fit's figures (`best_val_loss` to `history`; test_loss None where the run was not
    tested); the fields of a status are written with that status only, `evaluation` when there is
    one. A record without a status is a completed run's: runs wrote none before there were others."""

    best_val_loss: float | None = None
    test_loss: float | None = None
    epochs: int | None = None
    stopped_early: bool = False
    train_samples_per_s: float | None = None
    train_seconds: float | None = None
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    precision: str | None = None
    status: Status = Status.COMPLETED
    history: list[dict] = field(default_factory=list)  # each validation's epoch, val_loss and wall seconds since the fit began
    evaluation: dict[str, float] | None = None  # with evaluate=true, the evaluation's headline figures
    # pruned: after which epoch, and that epoch's val loss (validated, but not checkpointed)
    pruned_at_epoch: int | None = None
    val_loss: float | None = None
    # interrupted: the signal, where it stopped (batch None: while testing), the checkpoint it saved,
    # the SLURM job that requeued it and the command that resumes it
    signal: str | None = None
    epoch: int | None = None
    batch: int | None = None
    global_step: int | None = None
    interrupt_checkpoint: str | None = None
    requeued_slurm_job: str | None = None
    resume: str | None = None
    # failed: the one-line error
    error: str | None = None

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # also from its word, as metrics.json has it

    def to_json(self) -> dict:
        """The keys metrics.json holds for this record's status, in the file's order."""
        kept = {"status", *_STATUS_FIELDS.get(self.status, ())}
        if self.status is not Status.FAILED:
            kept.update(_FIT_FIELDS)
        if self.evaluation is not None:
            kept.add("evaluation")
        return {key: value for key, value in asdict(self).items() if key in kept} | {"status": self.status.value}

    def write(self, folder: str | Path) -> None:
        """Write `<folder>/metrics.json` atomically: a reader sees the old record or this one."""
        write_json(Path(folder) / FILE, self.to_json())

    @classmethod
    def read(cls, folder: str | Path) -> "RunRecord | None":
        """The record in `folder`, None where there is none yet. A file that cannot be read as a
        record is a failed run's whose error says so, as the sweep summary shows it; keys that a
        record does not know are left out."""
        try:
            data = json.loads((Path(folder) / FILE).read_text())
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            return cls(**{key: data[key] for key in _FIELDS if key in data})
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return cls(status=Status.FAILED, error=f"unreadable {FILE} ({exc})")


_FIELDS = [f.name for f in fields(RunRecord)]
_FIT_FIELDS = _FIELDS[: _FIELDS.index("history") + 1]
_STATUS_FIELDS = {
    Status.PRUNED: ("pruned_at_epoch", "val_loss"),
    Status.INTERRUPTED: ("signal", "epoch", "batch", "global_step", "interrupt_checkpoint", "requeued_slurm_job", "resume"),
    Status.FAILED: ("error",),
}


def run_status(folder: str | Path) -> Status:
    """How the run in `folder` ended; unfinished while it has no record."""
    record = RunRecord.read(folder)
    return Status.UNFINISHED if record is None else record.status
