"""One timed training run per process, started by `benchmarks.suite` (`make bench`).

`python -m benchmarks.runs <kind> <settings.json>` runs one of three kinds and writes its
measurements to the `result` path named in the settings:

- `lecture`: a plain PyTorch loop written the lecture's way: torchvision's MNIST with ToTensor per
  sample, a DataLoader, noise added on the CPU per batch, fp32, Adam, MSE, `loss.item()` each step.
- `framework`: the framework itself, `train(cfg)` with the project's defaults plus `overrides`.
- `compute`: the pure compute bound: the framework's network, precision and memory format doing only
  forward, backward and optimizer step on batches already in memory (noisy inputs and clean
  targets, both made before the clock starts).

All three compose the same config, so they train the same network from the same initial weights on
the same training images, with the same batch size, learning rate and number of epochs. Each
returns the precision it trained at.
"""

import json
import resource
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from typing_extensions import override

from autoencoder.config.validation import validate
from autoencoder.data.batches import ShuffledBatches
from autoencoder.data.images import data_module
from autoencoder.utils.cli import load_config
from autoencoder.utils.files import write_json
from autoencoder.utils.hardware import uses_gpu

AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class EpochClock:
    """Training seconds per epoch, from the epoch's start to the end of its last optimizer step
    (validation excluded), and the wall-clock time of the first training step."""

    def __init__(self, device: torch.device):
        self.device = device
        self.epochs: list[tuple[int, float]] = []  # (samples, seconds)
        self.first_step_at: float | None = None
        self.val_loss: float | None = None

    def start_epoch(self) -> None:
        self.samples, self.started = 0, time.perf_counter()

    def step_started(self) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def step_done(self, batch_size: int) -> None:
        self.samples += batch_size

    def end_epoch(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # once per epoch: the queued steps must finish
        self.epochs.append((self.samples, time.perf_counter() - self.started))


class LightningEpochClock(L.Callback):
    """Drives an EpochClock from Lightning's hooks, and reads the last validation loss."""

    def __init__(self, clock: EpochClock):
        self.clock = clock

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.clock.start_epoch()

    @override
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.clock.step_started()

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clock.step_done(len(batch[0]))
        if batch_idx + 1 == trainer.num_training_batches:
            self.clock.end_epoch()

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.clock.val_loss = float(trainer.callback_metrics["val/loss"])


def compose_config(settings: dict, overrides: list[str] = ()) -> DictConfig:
    """The framework's config for this benchmark: its defaults, the benchmark's subset, epochs,
    noise and accelerator, then the run's own overrides; validated, so complete."""
    cfg = load_config(
        "config",
        [
            f"data.train_size={settings['train_size']}",
            f"trainer.max_epochs={settings['epochs']}",
            f"noise={settings['noise']}",
            f"seed={settings['seed']}",
            f"trainer.accelerator={settings['accelerator']}",
            f"output_dir={settings['run_dir']}",
            *overrides,
        ],
    )
    validate(cfg)
    return cfg


def _device(cfg: DictConfig) -> torch.device:
    return torch.device("cuda" if uses_gpu(cfg.trainer.accelerator) else "cpu")


def lecture(cfg: DictConfig, clock: EpochClock) -> str:
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import MNIST
    from torchvision.transforms import ToTensor

    device = _device(cfg)
    datamodule = data_module(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()  # only for the indices of the framework's train/val split
    mnist = MNIST(str(datamodule.dataset.data_dir), train=True, transform=ToTensor())
    train_loader = DataLoader(Subset(mnist, datamodule.train_index.tolist()), batch_size=cfg.data.batch_size, shuffle=True)
    val_loader = DataLoader(Subset(mnist, datamodule.val_index.tolist()), batch_size=cfg.data.batch_size)
    torch.manual_seed(cfg.seed)
    model = instantiate(cfg.model).to(device)
    optimizer = instantiate(cfg.optimizer)(model.parameters())

    def add_noise(x: torch.Tensor) -> torch.Tensor:
        return torch.clip(x + cfg.noise * torch.randn(x.size()), 0.0, 1.0)

    for _ in range(cfg.trainer.max_epochs):
        model.train()
        clock.start_epoch()
        for x, _ in train_loader:
            clock.step_started()
            noisy, x = add_noise(x).to(device), x.to(device)
            loss = F.mse_loss(model(noisy), x)
            loss.item()  # the lecture sums the float loss every step
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            clock.step_done(len(x))
        clock.end_epoch()
        model.eval()
        with torch.no_grad():
            losses = [F.mse_loss(model(add_noise(x).to(device)), x.to(device)).item() for x, _ in val_loader]
        clock.val_loss = sum(losses) / len(losses)
    return "32-true"


def framework(cfg: DictConfig, clock: EpochClock) -> str:
    from autoencoder.workflows.jobs import train_and_evaluate

    return train_and_evaluate(cfg, callbacks=[LightningEpochClock(clock)])["precision"]


def compute(cfg: DictConfig, clock: EpochClock) -> str:
    device = _device(cfg)
    images = data_module(cfg.data).split("train")[0]
    torch.manual_seed(cfg.seed)
    net = instantiate(cfg.model).to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    if cfg.compile:
        net.compile(mode=None if cfg.compile is True else cfg.compile)
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    dtype = AUTOCAST[str(cfg.trainer.precision)]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    corruption = instantiate(cfg.corruption)
    batches = ShuffledBatches(len(images), cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    for epoch in range(cfg.trainer.max_epochs):
        batches.set_epoch(epoch)
        clean = [images[index].to(device) for index in batches]  # all made before the clock starts
        epoch_batches = [(corruption(x), x) for x in clean]
        clock.start_epoch()
        for noisy, x in epoch_batches:
            clock.step_started()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = net(noisy)
            loss = F.mse_loss(out.float(), x)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            clock.step_done(len(x))
        clock.end_epoch()
    return str(cfg.trainer.precision)


KINDS = {"lecture": lecture, "framework": framework, "compute": compute}


def main(kind: str, settings_path: str) -> None:
    settings = json.loads(Path(settings_path).read_text())
    cfg = compose_config(settings, settings.get("overrides", []))
    device = _device(cfg)
    clock = EpochClock(device)
    precision = KINDS[kind](cfg, clock)  # the one it trained at
    (first_samples, first_seconds), *steady = clock.epochs
    steady_samples, steady_seconds = (sum(column) for column in zip(*steady, strict=True)) if steady else (0, 0.0)
    result = {
        "samples_per_s": steady_samples / steady_seconds if steady else None,
        "first_epoch_samples_per_s": first_samples / first_seconds,
        "startup_s": clock.first_step_at - settings["launched_at"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "val_loss": clock.val_loss,
        "precision": precision,
    }
    write_json(settings["result"], result)


if __name__ == "__main__":
    main(*sys.argv[1:])
