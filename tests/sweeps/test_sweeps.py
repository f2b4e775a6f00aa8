"""Sweeps and scaling out, run as a user would: `python -m autoencoder.train -m ...` in a subprocess."""

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import FAST, run_module
from tests.training.test_run import read_events

pytestmark = pytest.mark.slow


def tiny(fake_mnist, batch_size: bool = True) -> list[str]:
    """Few-batch settings on the fake data; without the batch size for a search that tunes it
    (a fixed override leaves Optuna's search space)."""
    return [f"data.data_dir={fake_mnist}", *(o for o in FAST if batch_size or not o.startswith("data.batch_size"))]


def multirun(tmp_path, fake_mnist, *overrides: str, timeout: int = 600) -> tuple:
    sweep = tmp_path / "sweep"
    result = run_module("autoencoder.train", "-m", *tiny(fake_mnist), f"hydra.sweep.dir={sweep}", *overrides, cwd=tmp_path, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(sweep / "summary.csv") as file:
        return sweep, {row["overrides"]: row for row in csv.DictReader(file)}


def test_a_failed_job_does_not_stop_the_sweep_and_the_summary_shows_it(tmp_path, fake_mnist):
    # Masking noise is a fraction of pixels: 1.5 is refused, by that job only.
    sweep, rows = multirun(tmp_path, fake_mnist, "corruption=gaussian,masking", "noise=0.3,1.5")
    assert len(rows) == 4
    failed = next(r for o, r in rows.items() if o.endswith("corruption=masking noise=1.5"))
    assert failed["status"] == "failed" and failed["error"] == "noise must be a number in [0, 1] for the Masking corruption, got 1.5"
    completed = [r for r in rows.values() if r["status"] == "completed"]
    assert len(completed) == 3
    for row in completed:  # the summary carries each job's own metrics
        assert float(row["test_loss"]) == json.loads((sweep / row["job"] / "metrics.json").read_text())["test_loss"]
    assert (sweep / "summary.md").is_file() and (sweep / "summary.png").is_file()
    events = read_events(next(sweep.glob("corruption=*,noise=*")))  # a job's TensorBoard run, named by its swept overrides
    assert len(list(sweep.glob("corruption=*,noise=*"))) == len(completed)
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_joblib_jobs_share_the_cores(tmp_path, fake_mnist):
    sweep, rows = multirun(tmp_path, fake_mnist, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.latent_dim=2,4", "logger=none")
    assert [r["status"] for r in rows.values()] == ["completed"] * 2
    for row in rows.values():
        config = (sweep / row["job"] / "config.yaml").read_text()
        assert f"threads: {max(1, os.cpu_count() // 2)}\n" in config


# The contractive penalty differentiates a gradient, the VAE samples: both under DDP's gradient hooks too.
@pytest.mark.parametrize("variant", ["ae", "contractive", "vae"])
def test_ddp_on_cpu_writes_one_consistent_metrics_file(tmp_path, fake_mnist, variant):
    run = tmp_path / "run"
    result = run_module(
        "autoencoder.train", *tiny(fake_mnist), "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"hydra.run.dir={run}",
        f"variant={variant}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("metrics.json")) == ["run/metrics.json"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 1
    events = read_events(run / "tensorboard")  # rank 0 logged the loss averaged over both processes
    assert events.Scalars("test/loss")[-1].value == pytest.approx(metrics["test_loss"])


def test_submitit_local_launcher(tmp_path, fake_mnist):
    sweep, rows = multirun(tmp_path, fake_mnist, "hydra/launcher=submitit_local", "model.latent_dim=2,4", "logger=none")
    assert [r["status"] for r in rows.values()] == ["completed"] * 2


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, fake_mnist):
    command = [sys.executable, "-m", "autoencoder.train", *tiny(fake_mnist), "logger=none"]
    runs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert all(p.wait(timeout=300) == 0 for p in runs), [p.stderr.read()[-2000:] for p in runs]
    folders = sorted(p.parent for p in (tmp_path / "outputs").rglob("metrics.json"))
    assert len(folders) == 2 and folders[0] != folders[1]


def test_eight_jobs_on_two_parallel_workers_all_finish(tmp_path, fake_mnist):
    sweep, rows = multirun(
        tmp_path, fake_mnist, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.latent_dim=2,4", "noise=0,0.3", "seed=1,2", "logger=none"
    )
    assert len(rows) == 8 and [r["status"] for r in rows.values()] == ["completed"] * 8
    for row in rows.values():
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert metrics["epochs"] == 1 and float(row["test_loss"]) == metrics["test_loss"]
    assert "8 jobs: 8 completed" in (sweep / "summary.md").read_text()


def test_an_interrupted_sweep_is_listed_and_run_again_resumes_only_what_did_not_finish(tmp_path, fake_mnist):
    from tests.training.test_interrupts import start_and_signal

    sweep = tmp_path / "sweep"
    # Job 0 is short, job 1 long enough to be found training (many steps of 10 images).
    args = ["autoencoder.train", "-m", f"data.data_dir={fake_mnist}", "data.val_size=50", "data.check_md5=false", "trainer.accelerator=cpu",
            "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false", "logger=none", f"hydra.sweep.dir={sweep}",
            "data.batch_size=64,10", "trainer.max_epochs=6"]  # fmt: skip
    process = start_and_signal(args, sweep, [signal.SIGTERM], cwd=tmp_path, ready=sweep / "1" / "checkpoints" / "last.ckpt")
    assert process.returncode == 128 + signal.SIGTERM, process.stderr.read()[-3000:]
    summary = run_module("autoencoder.summarize", str(sweep), cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr[-3000:]
    with open(sweep / "summary.csv") as file:
        rows = {row["job"]: row for row in csv.DictReader(file)}
    assert rows["0"]["status"] == "completed" and rows["1"]["status"] == "interrupted"
    assert rows["1"]["error"].startswith("SIGTERM in epoch ")
    first_job = (sweep / "0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns

    result = run_module(*args, "resume_unfinished=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(sweep / "summary.csv") as file:
        rows = {row["job"]: row for row in csv.DictReader(file)}
    assert [rows[job]["status"] for job in ("0", "1")] == ["completed", "completed"]
    assert (sweep / "0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == first_job  # kept, not trained again
    resumed = json.loads((sweep / "1" / "metrics.json").read_text())
    assert resumed["epochs"] == 6 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4, 5, 6]
