import csv
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import lightning
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoder import CONFIG_DIR
from autoencoder.data.dataset import DATA_ENV
from autoencoder.models.module import LitAutoencoder
from autoencoder.runs.checkpoints import datamodule_for
from autoencoder.training.run import build_trainer, train
from autoencoder.utils.errors import user_message
from tests.conftest import run_module

METRIC_KEYS = {"best_val_loss", "test_loss", "epochs", "stopped_early", "train_samples_per_s", "best_checkpoint", "last_checkpoint", "history"}


def read_events(folder):
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_train_writes_metrics_checkpoints_and_tensorboard(make_cfg, tmp_path):
    metrics = train(make_cfg("model.latent_dim=2", "noise=0.3", "trainer.log_every_n_steps=1"))  # the per-step rate of the schedule too
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert metrics.keys() >= METRIC_KEYS
    assert metrics["epochs"] == 1 and metrics["stopped_early"] is False
    assert metrics["train_samples_per_s"] > 0
    # The test loss is the best checkpoint's on the whole test set (60 images, batches of 32), with
    # the fixed evaluation noise; training ran in this machine's precision, the check in fp32.
    lit = LitAutoencoder.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu").eval()
    run_cfg = OmegaConf.load(run / "config.yaml")
    test_x, _ = datamodule_for(run_cfg, {"data_dir": run_cfg.data.data_dir}).split("test")
    with torch.no_grad():
        losses = [F.mse_loss(lit(lit.corruption(x, lit.eval_generator(i, x.device))), x, reduction="sum") for i, x in enumerate(test_x.split(32))]
    assert metrics["test_loss"] == pytest.approx(float(sum(losses)) / test_x.numel(), rel=0.02)
    assert metrics["best_val_loss"] == pytest.approx(min(e.value for e in read_events(run / "tensorboard").Scalars("val/loss")))
    ((entry),) = metrics["history"]  # one validated epoch: its loss, and the wall time it was reached at
    assert entry["epoch"] == 1 and entry["val_loss"] == pytest.approx(metrics["best_val_loss"]) and entry["seconds"] > 0
    assert os.path.isfile(metrics["best_checkpoint"]) and os.path.isfile(metrics["last_checkpoint"])
    saved = OmegaConf.load(run / "config.yaml")  # resolved: no interpolation left
    assert saved.model.latent_dim == 2 and saved.corruption.noise == 0.3 and "${" not in (run / "config.yaml").read_text()
    assert (run / "reconstructions.png").is_file() and (run / "latent.png").is_file()

    events = read_events(run / "tensorboard")
    scalars = set(events.Tags()["scalars"])
    expected = {"train/loss_epoch", "val/loss", "test/loss", "vitals/speed/train_samples_per_s", "vitals/speed/epochs_per_s", "vitals/lr-Adam", "val/loss_best"}
    assert expected <= scalars
    grid = events.Images("val/reconstructions")[-1]
    assert (grid.width, grid.height) == (10 * 28 + 11 * 2, 3 * 28 + 4 * 2)  # 10 digits, 3 rows, 2px padding
    assert events.Images("val/latent")
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    assert events.Scalars("val/loss_best")[-1].value == pytest.approx(metrics["best_val_loss"])  # an HParams metric (tests/training/test_hparams.py)


def test_plain_mlp_autoencoder_with_csv_logger(make_cfg, tmp_path):
    metrics = train(make_cfg("model=mlp", "model.latent_dim=8", "noise=0", "logger=csv", "loss=bce"))
    run = tmp_path / "run"
    assert (run / "csv" / "metrics.csv").is_file() and not (run / "tensorboard").exists()
    assert not (run / "latent.png").exists()  # the scatter is only drawn for a 2-D latent space
    assert metrics["test_loss"] > 0


def test_no_logger_no_early_stopping(make_cfg, tmp_path):
    metrics = train(make_cfg("logger=none", "early_stopping=none", "trainer.max_epochs=2"))
    assert metrics["epochs"] == 2 and metrics["stopped_early"] is False
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run" / "tensorboard").exists()


def test_early_stopping_stops(make_cfg):
    # Any val loss "improves" on the initial inf, but no later one beats it by 10: stop after 2 epochs.
    metrics = train(make_cfg("trainer.max_epochs=5", "early_stopping.patience=1", "early_stopping.min_delta=10"))
    assert metrics["epochs"] == 2 and metrics["stopped_early"] is True


def test_a_trainer_argument_the_config_leaves_to_lightning_is_set_from_the_command_line(make_cfg):
    assert "log_every_n_steps" not in OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml")
    assert build_trainer(make_cfg("trainer.log_every_n_steps=7"), None, []).log_every_n_steps == 7


def test_validation_interval(make_cfg, tmp_path):
    train(make_cfg("trainer.max_epochs=4", "trainer.check_val_every_n_epoch=2", "early_stopping=none"))
    assert len(read_events(tmp_path / "run" / "tensorboard").Scalars("val/loss")) == 2


def test_resume_from_checkpoint(make_cfg, tmp_path):
    first = train(make_cfg(output_dir=tmp_path / "first"))
    resumed = train(make_cfg("trainer.max_epochs=3", f"ckpt_path={first['last_checkpoint']}", output_dir=tmp_path / "second"))
    assert resumed["epochs"] == 3
    # Only epochs 2 and 3 ran in the second run: 3 batches of 32 each.
    events = read_events(tmp_path / "second" / "tensorboard")
    assert [e.step for e in events.Scalars("val/loss")] == [5, 8]
    # The history goes on from the first run's: its clock counts on from where that one stopped.
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3] and resumed["history"][0] == first["history"][0]
    assert all(a["seconds"] < b["seconds"] for a, b in itertools.pairwise(resumed["history"]))
    assert os.path.isfile(first["best_checkpoint"]) and os.path.isfile(first["last_checkpoint"])  # earlier run untouched


def assert_user_error(cfg, message):
    """train(cfg) fails, and the one line the command line would print matches `message`."""
    with pytest.raises(Exception) as excinfo:
        train(cfg)
    assert re.search(message, user_message(excinfo.value) or "")


def test_bad_checkpoints(make_cfg, tmp_path):
    assert_user_error(make_cfg(f"ckpt_path={tmp_path}/nope.ckpt"), "ckpt_path .*nope.ckpt does not exist")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert_user_error(make_cfg(f"ckpt_path={tmp_path}/notes.ckpt"), "notes.ckpt is not a Lightning checkpoint")
    other = train(make_cfg("model.latent_dim=2", output_dir=tmp_path / "other"))
    assert_user_error(make_cfg("model.latent_dim=8", f"ckpt_path={other['last_checkpoint']}"), "holds a different model than the configured one")


# --- the command line, as a user runs it -----------------------------------------------------


def data_overrides(fake_mnist) -> list[str]:
    """Real MNIST when the data variable points at it, else the fake files."""
    if os.environ.get(DATA_ENV):
        return []
    return [f"data.data_dir={fake_mnist}", "data.check_md5=false", "data.val_size=50"]


LIMITS = ["trainer.max_epochs=1", "trainer.limit_train_batches=5", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]


@pytest.mark.slow
def test_command_line_from_another_folder(tmp_path, fake_mnist):
    result = run_module("autoencoder.train", "model.latent_dim=2", "noise=0.3", *LIMITS, *data_overrides(fake_mnist), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = tmp_path.glob("outputs/*/*/metrics.json")  # the run folder is under the working folder
    saved = json.loads(metrics.read_text())
    # The line per validation (train loss, val loss, best, elapsed time, speed) and the summary.
    assert re.search(r"^\[Epoch   1\] train \d\.\d{4}  val \d\.\d{4}  best \| 00:00:\d\d  [\d.]+ epochs/s  \d+ samples/s$", result.stdout, re.M)
    assert f"val {saved['best_val_loss']:.4f}  best" in result.stdout and f"test loss {saved['test_loss']:.5f}" in result.stdout
    assert saved["epochs"] == 1
    assert "Tip" not in result.stdout + result.stderr  # no third-party advertisement on the first screen
    assert OmegaConf.load(metrics.parent / "config.yaml").model.latent_dim == 2


@pytest.mark.slow
def test_multirun(tmp_path, fake_mnist):
    sweep = tmp_path / "sweep"
    result = run_module("autoencoder.train", "-m", "model.latent_dim=2,4", f"hydra.sweep.dir={sweep}", *LIMITS, *data_overrides(fake_mnist), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for job, latent_dim in ((0, 2), (1, 4)):
        assert json.loads((sweep / str(job) / "metrics.json").read_text())["epochs"] == 1
        assert OmegaConf.load(sweep / str(job) / "config.yaml").model.latent_dim == latent_dim


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.latent_dim=-2"], "error: model.latent_dim must be an integer >= 1, got -2"),
        (["model=foo"], "error: unknown model option 'foo' (allowed: conv, mlp)"),
        (
            ["corruption=blur"],
            "error: unknown corruption option 'blur' (allowed: chain, flip, gaussian, grayscale, masking, rotation, salt_pepper, translation)",
        ),
        (["corruption=salt_pepper", "noise=1.2"], "error: noise must be a number in [0, 1] for the SaltPepper corruption, got 1.2"),
        (["trainer.max_epoch=3"], "error: unknown key 'trainer.max_epoch' (not a setting of Trainer): did you mean trainer.max_epochs?"),
        (["data.data_dir={tmp}/empty"], "error: MNIST is not in {tmp}/empty/MNIST/raw and could not be downloaded"),
        (["data.data_dir={tmp}/corrupt"], "bad magic number"),
    ],
)
def test_command_line_bad_input(tmp_path, fake_mnist, overrides, message):
    corrupt = tmp_path / "corrupt" / "MNIST" / "raw"
    corrupt.mkdir(parents=True)
    for f in (fake_mnist / "MNIST" / "raw").iterdir():
        (corrupt / f.name).write_bytes(b"garbage!" + f.read_bytes()[8:])
    earlier = tmp_path / "outputs" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"test_loss": 0.01}\n')
    offline = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", DATA_ENV: str(fake_mnist)}
    args = [o.format(tmp=tmp_path) for o in overrides]
    result = run_module("autoencoder.train", *args, *LIMITS, "data.check_md5=false", cwd=tmp_path, env=offline)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message.format(tmp=tmp_path) in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert (earlier / "metrics.json").read_text() == '{"test_loss": 0.01}\n'
    assert not list(tmp_path.glob("outputs/*/*/metrics.json"))


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_precision_options_train(make_cfg, precision):
    assert train(make_cfg(f"trainer.precision={precision}", "logger=none"))["precision"] == precision


def test_channels_last_weights_and_a_checkpoint_that_loads_into_a_plain_network(make_cfg):
    from autoencoder.runs.checkpoints import load_trained

    metrics = train(make_cfg("channels_last=true", "logger=none"))
    cfg, module = load_trained(metrics["best_checkpoint"])
    conv = module.net.encoder[3].weight  # 32 -> 64 channels (with one channel both layouts agree)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = instantiate(cfg.model)
    plain.load_state_dict(module.net.state_dict())
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(plain.eval().decode(plain.encode(x)), module(x), atol=1e-6)


@pytest.mark.slow
def test_compiled_network_trains(make_cfg):
    assert train(make_cfg("compile=true", "logger=none"))["test_loss"] > 0


HOST_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__")


def host_reads_while_training(make_cfg, monkeypatch, tmp_path, batches: int) -> list[str]:
    """The tensor reads on the host (on a GPU, each one waits for the device) during the training
    steps of a one-epoch run, validation excluded. The optimizer's step counters are left out:
    torch keeps them on the CPU even when training on a GPU."""
    reads, counting = [], [False]
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def read(self, *args, _original=original, _name=name, **kwargs):
            if counting[0] and "torch/optim/" not in sys._getframe(1).f_code.co_filename.replace("\\", "/"):
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)

    class Window(lightning.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            counting[0] = True

        def on_validation_start(self, trainer, pl_module):
            counting[0] = False

    try:
        # progress lines (stdout is not a terminal here) read the loss at each half of the epoch, however many steps
        overrides = (f"trainer.limit_train_batches={batches}", "trainer.log_every_n_steps=1000", "progress.every_fraction=0.5")
        cfg = make_cfg(*overrides, output_dir=tmp_path / f"run{batches}")
        train(cfg, callbacks=[Window()])
    finally:
        monkeypatch.undo()
    return reads


def test_training_steps_never_wait_for_the_device(make_cfg, monkeypatch, tmp_path):
    # Between logging intervals the loss stays on the device; images and plots wait for validation.
    # What remains is per epoch (the loader's seed) or per fraction of it (progress lines), so 8
    # steps read no more than 2.
    assert host_reads_while_training(make_cfg, monkeypatch, tmp_path, 8) == host_reads_while_training(make_cfg, monkeypatch, tmp_path, 2)


def test_a_diverged_run_stops_keeps_its_last_good_checkpoint_and_is_marked_failed(make_cfg, tmp_path, monkeypatch):
    from autoencoder.models.variants import Plain
    from autoencoder.training.callbacks import Diverged

    original = Plain.terms

    def nan_from_epoch_2(self, net, x, target, loss, generator=None, progress=None):
        terms = original(self, net, x, target, loss, generator, progress)
        training_in_epoch_2 = progress is not None and progress >= 1  # progress: the training epoch, counted from 0
        return {name: term * float("nan") for name, term in terms.items()} if training_in_epoch_2 else terms

    monkeypatch.setattr(Plain, "terms", nan_from_epoch_2)
    with pytest.raises(Diverged, match="training diverged: the loss became NaN or infinite in epoch 2 .*the last good checkpoint is .*last.ckpt"):
        train(make_cfg("trainer.max_epochs=3", "logger=none"))
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error"].startswith("training diverged")
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and all(v.isfinite().all() for v in last["state_dict"].values() if v.is_floating_point())


def test_an_absurd_learning_rate_fails_in_one_line(tmp_path, fake_mnist):
    result = run_module("autoencoder.train", "optimizer.lr=1e30", "hydra.run.dir=run", *LIMITS, *data_overrides(fake_mnist), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")][0].startswith("error: training diverged")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def epoch_losses(run) -> list[tuple]:
    with open(run / "csv" / "metrics.csv") as file:
        return [(row["epoch"], row["train/loss_epoch"], row["val/loss"]) for row in csv.DictReader(file) if row["train/loss_epoch"] or row["val/loss"]]


def test_same_seed_and_deterministic_give_identical_losses(make_cfg, tmp_path):
    runs = [tmp_path / name for name in ("a", "b")]
    for run in runs:
        train(make_cfg("trainer.deterministic=true", "trainer.max_epochs=2", "noise=0.3", "logger=csv", output_dir=run))
    first, second = (epoch_losses(run) for run in runs)
    assert len(first) >= 4 and first == second


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_folder_to_the_same_end(tmp_path, fake_mnist):
    run = tmp_path / "run"
    settings = [f"data.data_dir={fake_mnist}", "data.val_size=50", "data.batch_size=10", "data.check_md5=false", "trainer.max_epochs=4",
                "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false", "trainer.accelerator=cpu", "logger=csv"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "autoencoder.train", *settings, f"hydra.run.dir={run}"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.02)
    time.sleep(0.3)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(last, weights_only=True)
    assert killed_at["epoch"] < 3 and not (run / "metrics.json").exists()

    result = run_module("autoencoder.train", f"resume={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 4
    final = torch.load(last, weights_only=True)
    steps_per_epoch = math.ceil((300 - 50) / 10)
    assert final["epoch"] == 3 and final["global_step"] == 4 * steps_per_epoch  # as if never killed
    assert final["optimizer_states"][0]["state"] and any("EarlyStopping" in key for key in final["callbacks"])
    assert len(epoch_losses(run)) >= 4  # the csv log goes on in the same folder
