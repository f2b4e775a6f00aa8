"""Interrupted runs: a signal stops a run at a step boundary with a checkpoint and a metrics.json
that says so, the command exits 128 + the signal, and the resumed run ends exactly where the run
left alone ends: same batches, same noise, same weights."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from autoencoder.runs.checkpoints import INTERRUPT_CHECKPOINT
from autoencoder.training.interrupts import SignalListener, slurm_job_id
from autoencoder.training.run import train
from autoencoder.utils.errors import Interrupted
from tests.conftest import run_module

# 250 training images in batches of 32: 8 steps an epoch.
EXACT = ["trainer.deterministic=true", "trainer.precision=32-true", "trainer.max_epochs=2", "trainer.limit_train_batches=null", "noise=0.3", "logger=none"]
STEPS_PER_EPOCH = 8


class SignalAt(L.Callback):
    """Sends the process `signum` at the end of training batch `batch` (0-based) of `epoch`."""

    def __init__(self, epoch: int, batch: int, signum: int = signal.SIGTERM) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.signum)


class BatchRecorder(L.Callback):
    """The index of every training image, batch by batch (the fake images carry it in pixels (0, 1)
    and (0, 2)), and the rate each step trained with."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        pixels = (batch[0][:, 0, 0, 1:3] * 255).round().long()
        self.batches.append((pixels[:, 0] * 256 + pixels[:, 1]).tolist())
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


# A VAE with a KL warm-up also needs its sampling noise and its place in the warm-up restored.
VAE = ("variant=vae", "loss=bce", "variant.warmup_epochs=2")


@pytest.mark.parametrize(
    "epoch, batch, stopped_after, variant",
    [(0, 2, (1, 4), ()), (0, STEPS_PER_EPOCH - 1, (1, STEPS_PER_EPOCH), ()), (0, 2, (1, 4), VAE)],
    ids=["mid-epoch", "epoch boundary", "vae mid-epoch"],
)
def test_interrupted_and_resumed_run_ends_as_the_run_left_alone(make_cfg, tmp_path, epoch, batch, stopped_after, variant):
    alone, alone_batches = tmp_path / "alone", BatchRecorder()
    reference = train(make_cfg(*EXACT, *variant, output_dir=alone), callbacks=[alone_batches])

    run, first_part = tmp_path / "interrupted", BatchRecorder()
    with pytest.raises(Interrupted) as stop:
        train(make_cfg(*EXACT, *variant, output_dir=run), callbacks=[SignalAt(epoch, batch), first_part])
    assert stop.value.exit_code == 128 + signal.SIGTERM
    stopped = json.loads((run / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["signal"] == "SIGTERM"
    assert (stopped["epoch"], stopped["batch"]) == stopped_after and stopped["global_step"] == stopped_after[1]
    assert stopped["interrupt_checkpoint"] == str(run / "checkpoints" / INTERRUPT_CHECKPOINT)
    assert stopped["resume"] == f"python -m autoencoder.train resume={run}"
    assert torch.load(stopped["interrupt_checkpoint"], weights_only=True)["global_step"] == stopped_after[1]

    rest = BatchRecorder()
    resumed = train(make_cfg(f"resume={run}", output_dir=tmp_path / "unused"), callbacks=[rest])
    assert resumed["status"] == "completed" and resumed["epochs"] == 2
    assert first_part.batches + rest.batches == alone_batches.batches  # no batch repeated or skipped
    assert first_part.rates + rest.rates == alone_batches.rates
    assert resumed["best_val_loss"] == pytest.approx(reference["best_val_loss"], abs=1e-6)
    assert [h["val_loss"] for h in resumed["history"]] == pytest.approx([h["val_loss"] for h in reference["history"]], abs=1e-6)
    for name, tensor in weights(alone).items():
        torch.testing.assert_close(weights(run)[name], tensor, rtol=0, atol=1e-6)


def test_a_run_stops_while_testing_and_resumes_to_its_test(make_cfg, tmp_path):
    class SignalWhileTesting(L.Callback):
        def on_test_batch_end(self, *args) -> None:
            os.kill(os.getpid(), signal.SIGINT)

    run = tmp_path / "run"
    with pytest.raises(Interrupted, match="stopped by SIGINT while testing"):
        train(make_cfg("logger=none", output_dir=run), callbacks=[SignalWhileTesting()])
    stopped = json.loads((run / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["batch"] is None and stopped["best_val_loss"] is not None
    assert not (run / "checkpoints" / INTERRUPT_CHECKPOINT).exists()  # the fit was done: last.ckpt resumes it
    resumed = train(make_cfg(f"resume={run}"))
    assert resumed["status"] == "completed" and resumed["test_loss"] is not None


def test_the_listener_records_the_first_signal_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    with SignalListener(["SIGUSR1"]) as listener:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert listener.received == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) == before


def test_a_second_signal_stops_at_once(tmp_path):
    script = textwrap.dedent("""
        import os, signal, time
        from autoencoder.training.interrupts import SignalListener
        with SignalListener(["SIGINT"]):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
        print("not reached")
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGINT and "not reached" not in done.stdout
    assert time.monotonic() - started < 20 and "SIGINT received: stopping after the current step" in done.stderr


@pytest.mark.parametrize(
    "environment, job",
    [({"SLURM_JOB_ID": "4242"}, "4242"), ({"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7"}, "4242_7"), ({}, None)],
)
def test_slurm_job_id(monkeypatch, environment, job):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert slurm_job_id() == job


# End to end through the command, as a scheduler or a user at a terminal would stop it.


def long_run(fake_mnist: Path, run: Path) -> list[str]:
    """A run of many short steps, so that a signal after its first checkpoint finds it training."""
    return [f"data.data_dir={fake_mnist}", "data.val_size=50", "data.batch_size=10", "data.check_md5=false", "trainer.max_epochs=6",
            "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false", "trainer.accelerator=cpu", "logger=csv",
            f"hydra.run.dir={run}"]  # fmt: skip


def start_and_signal(args: list[str], run: Path, signums: list[int], cwd: Path, env: dict | None = None, ready: Path | None = None) -> subprocess.Popen:
    """Start `python -m autoencoder.train args`, wait for `ready` (the first last.ckpt), send the signals."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    ready = ready or run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        time.sleep(0.01)
    for signum in signums:
        process.send_signal(signum)
    process.wait(timeout=120)
    return process


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1], ids=lambda s: signal.Signals(s).name)
def test_each_signal_stops_the_command_with_a_checkpoint_and_resume_finishes_it(tmp_path, fake_mnist, signum):
    run = tmp_path / "run"
    process = start_and_signal(["autoencoder.train", *long_run(fake_mnist, run)], run, [signum], cwd=tmp_path)
    stderr = process.stderr.read()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"interrupted: stopped by {name} in epoch" in stderr and f"resume with: python -m autoencoder.train resume={run}" in stderr
    stopped = json.loads((run / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["signal"] == name and 0 < stopped["global_step"] < 6 * 25
    interrupt = torch.load(run / "checkpoints" / INTERRUPT_CHECKPOINT, weights_only=True)
    assert interrupt["global_step"] == stopped["global_step"] and interrupt["optimizer_states"][0]["state"]

    result = run_module("autoencoder.train", f"resume={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    finished = json.loads((run / "metrics.json").read_text())
    assert finished["status"] == "completed" and finished["epochs"] == 6
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6 * 25  # as if never stopped


SLOW_WRITES = textwrap.dedent("""
    # The train command with every file write slowed down (a slow disk), so that a test can send a
    # second Ctrl-C while the interrupt checkpoint is being written.
    import os, sys, time
    fsync = os.fsync
    os.fsync = lambda fd: (time.sleep(float(os.environ["SLOW_FSYNC_SECONDS"])), fsync(fd))
    from autoencoder.train import main
    main()
""")


@pytest.mark.slow
def test_a_second_ctrl_c_during_the_checkpoint_write_stops_at_once_and_loses_nothing(tmp_path, fake_mnist):
    run = tmp_path / "run"
    (tmp_path / "slow_train.py").write_text(SLOW_WRITES)
    args = ["slow_train", *long_run(fake_mnist, run)]
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=tmp_path, env={**os.environ, "SLOW_FSYNC_SECONDS": "0.5"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        time.sleep(0.01)
    before = last.read_bytes()
    process.send_signal(signal.SIGINT)
    writing = run / "checkpoints" / f".{INTERRUPT_CHECKPOINT}.{process.pid}.tmp"
    while not writing.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGINT  # ended by the signal itself, at once
    assert last.read_bytes() == before and not (run / "checkpoints" / INTERRUPT_CHECKPOINT).exists()
    assert not (run / "metrics.json").exists()

    result = run_module("autoencoder.train", f"resume={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not writing.exists()  # the killed write's temporary file is cleared
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_slurm_pre_timeout_signal_requeues_and_the_requeued_job_resumes_in_its_folder(tmp_path, fake_mnist):
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol_calls"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "3",
             "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "train"}  # fmt: skip
    run = tmp_path / "run"
    args = ["autoencoder.train", *long_run(fake_mnist, run)]
    process = start_and_signal(args, run, [signal.SIGUSR1], cwd=tmp_path, env=slurm)
    stderr = process.stderr.read()
    assert process.returncode == 128 + signal.SIGUSR1, stderr[-3000:]
    assert calls.read_text() == "requeue 4242_3\n" and "SLURM job 4242_3 requeued" in stderr
    assert json.loads((run / "metrics.json").read_text())["requeued_slurm_job"] == "4242_3"

    # SLURM starts the job's command again, with its restart count.
    again = run_module(*args, cwd=tmp_path, env=slurm | {"SLURM_RESTART_COUNT": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    finished = json.loads((run / "metrics.json").read_text())
    assert finished["status"] == "completed" and finished["epochs"] == 6
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6 * 25
    assert calls.read_text() == "requeue 4242_3\n"  # no second requeue


@pytest.mark.slow
def test_ddp_processes_stop_at_the_same_step_and_resume_together(tmp_path, fake_mnist):
    run = tmp_path / "run"
    args = ["autoencoder.train", *long_run(fake_mnist, run), "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    process = start_and_signal(args, run, [signal.SIGTERM], cwd=tmp_path)  # the first process only, as a scheduler may
    assert process.returncode == 128 + signal.SIGTERM, process.stderr.read()[-3000:]
    stopped = json.loads((run / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and torch.load(stopped["interrupt_checkpoint"], weights_only=True)["global_step"] == stopped["global_step"]

    result = run_module("autoencoder.train", f"resume={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    steps_per_process = math.ceil(25 / 2)  # 25 batches of 10 shared by two processes
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6 * steps_per_process
