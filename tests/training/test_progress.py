import csv
import re
import sys

import pytest

from autoencoder.training.run import train

TRAIN_LINE = re.compile(r"progress: epoch (\d+)/2  step (\d+)  (\d+)%  loss (\d+\.\d{4})  (\d+) samples/s  \d\d:\d\d:\d\d")


def test_training_prints_progress_lines_where_stdout_is_not_a_terminal(make_cfg, tmp_path, capsys):
    # 4 batches an epoch with a line at each quarter; two batches per optimizer step, whose loss
    # Lightning hands the callbacks divided by 2.
    cfg = make_cfg(
        "logger=csv",
        "trainer.log_every_n_steps=1",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "trainer.accumulate_grad_batches=2",
        "progress.every_fraction=0.25",
    )
    train(cfg)
    out = capsys.readouterr().out.splitlines()  # captured: not a terminal
    lines = [TRAIN_LINE.fullmatch(line) for line in out if line.startswith("progress: epoch")]
    assert len(lines) == 8 and all(lines), out
    assert [int(m[1]) for m in lines] == [1] * 4 + [2] * 4
    assert [int(m[2]) for m in lines] == [0, 1, 1, 2, 2, 3, 3, 4]  # the global step, after each batch
    assert [int(m[3]) for m in lines] == [25, 50, 75, 100] * 2
    assert all(int(m[5]) > 0 for m in lines)
    # The loss is the batch's own, as the logger has it at each optimizer step (the 2nd and 4th batch of an epoch).
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        logged = {int(row["step"]): float(row["train/loss_step"]) for row in csv.DictReader(f) if row["train/loss_step"]}
    stepped = [m for m in lines if int(m[3]) in (50, 100)]
    assert [float(m[4]) for m in stepped] == pytest.approx([logged[int(m[2]) - 1] for m in stepped], abs=6e-5)
    at = [i for i, line in enumerate(out) if line.startswith("progress: epoch")]
    assert at[3] < next(i for i, line in enumerate(out) if line.startswith("[Epoch   1]")) < at[4]  # before the first epoch line, not after
    tested = [line[: line.rindex("  ")] for line in out if line.startswith("progress: test")]  # the time left out
    assert tested == ["progress: test  1/2 batches  50%", "progress: test  2/2 batches  100%"]


def test_no_progress_lines_on_a_terminal(make_cfg, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    train(make_cfg("logger=none", "progress.every_fraction=0.25", "trainer.enable_progress_bar=false"))
    out = capsys.readouterr().out
    assert "[Epoch   1]" in out and "progress:" not in out
