"""A run's record, metrics.json: each kind of run reads back as written, a file written before the
record existed reads the same and is written again byte for byte, and a file that cannot be read
tells its readers a failed run."""

import json

import pytest

from autoencoder.runs.record import FINAL_STATUSES, RunRecord, Status, run_status
from autoencoder.utils import files
from autoencoder.utils.errors import UserError

FIT = {
    "best_val_loss": 0.1512012481689453,
    "test_loss": 0.14921727776527405,
    "epochs": 2,
    "stopped_early": False,
    "train_samples_per_s": 974.2,
    "train_seconds": 1.31,
    "best_checkpoint": "/runs/ae/checkpoints/best-epoch002.ckpt",
    "last_checkpoint": "/runs/ae/checkpoints/last.ckpt",
    "precision": "32-true",
    "status": "completed",
    "history": [{"epoch": 1, "val_loss": 0.20143036544322968, "seconds": 0.78}, {"epoch": 2, "val_loss": 0.1512012481689453, "seconds": 1.53}],
}
INTERRUPTION = {
    "signal": "SIGTERM",
    "epoch": 3,
    "batch": None,  # while testing
    "global_step": 120,
    "interrupt_checkpoint": None,
    "requeued_slurm_job": "4242_3",
    "resume": "python -m autoencoder.train resume=/runs/ae",
}
# metrics.json of each kind of run as the run wrote it before the record existed, key for key in its order.
WRITTEN_BEFORE = [
    pytest.param(FIT, Status.COMPLETED, id="completed"),
    pytest.param(FIT | {"evaluation": {"test_mse": 0.031, "knn_accuracy": 0.9}}, Status.COMPLETED, id="evaluated"),
    pytest.param(FIT | {"test_loss": None, "epochs": 1, "status": "pruned", "pruned_at_epoch": 1, "val_loss": 0.2}, Status.PRUNED, id="pruned"),
    pytest.param(FIT | {"test_loss": None, "status": "interrupted"} | INTERRUPTION, Status.INTERRUPTED, id="interrupted"),
    pytest.param({"status": "failed", "error": "loss diverged to nan at epoch 2"}, Status.FAILED, id="failed"),
]


@pytest.mark.parametrize("written, status", WRITTEN_BEFORE)
def test_a_record_written_before_reads_back_and_is_written_again_byte_for_byte(tmp_path, written, status):
    text = json.dumps(written, indent=2) + "\n"
    (tmp_path / "metrics.json").write_text(text)
    record = RunRecord.read(tmp_path)
    assert record.status is status and run_status(tmp_path) is status
    record.write(tmp_path / "again")
    assert (tmp_path / "again" / "metrics.json").read_text() == text
    assert RunRecord.read(tmp_path / "again") == record


def test_each_status_writes_its_own_keys(tmp_path):
    stopped = RunRecord(**FIT | {"status": "interrupted"} | INTERRUPTION)
    assert stopped.to_json() == FIT | {"status": "interrupted"} | INTERRUPTION
    assert RunRecord(status=Status.FAILED, error="noise must be ...").to_json() == {"status": "failed", "error": "noise must be ..."}
    pruned = RunRecord(status=Status.PRUNED, epochs=1, pruned_at_epoch=1).to_json()
    assert list(pruned)[-3:] == ["history", "pruned_at_epoch", "val_loss"] and "evaluation" not in pruned and "error" not in pruned


def test_a_record_without_a_status_is_an_older_run_s_completed_one(tmp_path):
    (tmp_path / "metrics.json").write_text('{"test_loss": 0.01, "a_key_of_later_versions": 1}\n')
    assert RunRecord.read(tmp_path) == RunRecord(test_loss=0.01, status=Status.COMPLETED)
    assert run_status(tmp_path) in FINAL_STATUSES


def test_no_record_is_an_unfinished_run(tmp_path):
    assert RunRecord.read(tmp_path) is None and run_status(tmp_path) is Status.UNFINISHED


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda path: path.write_text('{"status": "completed", "best_'), "unreadable metrics.json (Unterminated string"),
        (lambda path: path.write_text("[0.1, 0.2]\n"), "unreadable metrics.json (a JSON list, not an object)"),
        (lambda path: path.write_text('{"status": "finished"}\n'), "unreadable metrics.json ('finished' is not a valid Status)"),
        (lambda path: path.write_bytes(b"\xff\xfe"), "unreadable metrics.json ('utf-8' codec can't decode"),
        (lambda path: path.mkdir(), "unreadable metrics.json ([Errno 21] Is a directory"),
    ],
)
def test_a_record_that_cannot_be_read_is_a_failed_run_saying_so(tmp_path, damage, reason):
    damage(tmp_path / "metrics.json")
    record = RunRecord.read(tmp_path)
    assert record.status is Status.FAILED and record.error.startswith(reason) and "\n" not in record.error
    assert run_status(tmp_path) not in FINAL_STATUSES  # so a resume goes on with it


def test_a_write_that_fails_leaves_the_previous_record(tmp_path, monkeypatch):
    RunRecord(status=Status.INTERRUPTED, epoch=2, batch=40).write(tmp_path)
    before = (tmp_path / "metrics.json").read_text()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(UserError, match=rf"^cannot write metrics.json in {tmp_path}: No space left on device \(\d+ bytes needed\)"):
        RunRecord(**FIT).write(tmp_path)
    assert (tmp_path / "metrics.json").read_text() == before and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_statuses_read_as_their_words():
    assert [f"{status}" for status in Status] == ["completed", "pruned", "interrupted", "failed", "unfinished"]
    assert json.dumps({"status": Status.PRUNED}) == '{"status": "pruned"}' and Status("failed") is Status.FAILED
