"""The scale-out benchmarks (docs/sweeps.md, docs/datasets.md) run end to end on small inputs, so
that a change to the code they drive cannot leave them broken until the next measurement."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.larger_than_memory import generate
from benchmarks.sweep_storage import measure

pytestmark = pytest.mark.slow


def test_a_training_run_from_the_image_cache_reports_its_figures(tmp_path):
    folder = tmp_path / "images"
    generate(folder, 4800)  # 0.72 of them train: past the 50 batches of 64 before the clock starts
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.larger_than_memory", "--run", str(folder), "false", "55"], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["samples_per_s"] > 0 and 0 < figures["peak_rss_gib"] < 8
    assert sorted(p.name for p in (folder / ".autoencoder-cache").iterdir()) == ["test-64-RGB.u8", "train-64-RGB.u8"]


def test_two_workers_on_a_journal_file_run_every_trial_and_count_their_cpu(tmp_path):
    figures = measure(f"journal:///{tmp_path / 'study.log'}", workers=2, trials=4, work=0.03)
    assert figures["trials_per_min"] > 0 and figures["worker_cpu_ms"] > 0 and figures["server_cpu_ms"] is None
    assert Path(tmp_path / "study.log").stat().st_size > 0
