"""Progress lines during training where stdout is not a terminal.

There the progress bar is off (autoencoder.training.run.build_trainer), and a run printed nothing
between its first batch and its first `[Epoch   1]` line: minutes, or a quarter of an hour on a big
epoch. `ProgressLines` prints what the bar would show as plain lines (autoencoder.utils.progress):

    progress: epoch 2/4  step 1234  37%  loss 0.0123  1540 samples/s  00:01:12
    progress: test  12/40 batches  30%  00:00:05

The epoch counts from 1 as the `[Epoch   3]` lines do, the step is the global (optimizer) step, the
loss the latest training batch's, samples/s is over this epoch's training time (a validation in
the middle of it left out), the percentage is of the epoch's batches and the time is the epoch's.
"""

import sys

import lightning as L
from typing_extensions import override

from autoencoder.utils.progress import Reporter, Stopwatch


class ProgressLines(L.Callback):
    """Plain progress lines during fit and test. Whether to print is decided when a fit or a test
    starts: on the first process alone, when stdout is not a terminal. Between lines a step costs
    a clock reading; the loss is read from the device only for a line."""

    def __init__(self, every_seconds: float, every_fraction: float) -> None:
        self.every_seconds, self.every_fraction = every_seconds, every_fraction
        self.reporter: Reporter | None = None
        self.samples, self.clock = 0, Stopwatch()  # this epoch's samples and training seconds

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        reporter = Reporter(self.every_seconds, self.every_fraction, sys.stdout)
        self.reporter = None if reporter.terminal or not trainer.is_global_zero else reporter

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts none

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reporter is None:
            return
        self.reporter.start()
        self.samples, self.clock = 0, Stopwatch(self.reporter.clock)

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reporter is not None and not trainer.sanity_checking:
            self.clock.pause()

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reporter is not None and not trainer.sanity_checking:
            self.clock.resume()  # training goes on after a mid-epoch validation

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.reporter is None:
            return
        self.samples += len(batch[0]) * trainer.world_size  # every DDP process takes a batch
        fraction = (batch_idx + 1) / trainer.num_training_batches
        if not self.reporter.due(fraction):
            return
        seconds = self.clock.seconds
        loss = float(outputs["loss"]) * trainer.accumulate_grad_batches  # Lightning divides it by the accumulation
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        speed = self.samples / seconds if seconds > 0 else 0.0
        self.reporter.line(fraction, f"epoch {trainer.current_epoch + 1}{epochs}  step {trainer.global_step}", f"loss {loss:.4f}  {speed:.0f} samples/s")

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reporter is not None:
            self.reporter.start()

    @override
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.reporter is not None:
            total = trainer.num_test_batches[dataloader_idx]
            self.reporter.update((batch_idx + 1) / total, f"test  {batch_idx + 1}/{total} batches")
