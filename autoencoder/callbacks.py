"""Callbacks for what the lecture's trainer showed: speed, one summary line per validation, and
clean / noisy / reconstructed image grids plus a latent scatter at each validation; and a guard
that stops a diverged run before its broken weights reach a checkpoint.

Everything here runs at epoch or validation boundaries, never per training step, so it adds no
cost (and no device sync) to the training loop beyond counting samples.
"""

import math
import time
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import torch  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402

from autoencoder.errors import UserError  # noqa: E402


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class EpochSummary(L.Callback):
    """Measures training speed (samples/s over training time only, epochs/s over wall time), logs
    it, and prints a line per validation:
    `[Epoch   3] train 0.0412  val 0.0398  best | 00:01:12  0.05 epochs/s  1820 samples/s`."""

    def __init__(self) -> None:
        self.best = math.inf
        self.train_seconds = 0.0
        self.train_samples = 0

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()
        self.first_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_samples = 0
        self.epoch_seconds = 0.0
        self.epoch_start: float | None = time.perf_counter()
        self.validated = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.epoch_samples += len(batch[0]) * trainer.world_size  # every DDP process takes a batch

    def _stop_epoch_clock(self) -> None:
        if self.epoch_start is not None:
            self.epoch_seconds += time.perf_counter() - self.epoch_start
            self.epoch_start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop_epoch_clock()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated = True
            self.epoch_start = time.perf_counter()  # training goes on after a mid-epoch validation

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_epoch_clock()
        self.train_samples += self.epoch_samples
        self.train_seconds += self.epoch_seconds
        elapsed = time.perf_counter() - self.fit_start
        epochs_per_second = (trainer.current_epoch + 1 - self.first_epoch) / elapsed
        samples_per_second = self.epoch_samples / self.epoch_seconds if self.epoch_seconds else 0.0
        pl_module.log("speed/train_samples_per_s", samples_per_second)
        pl_module.log("speed/epochs_per_s", epochs_per_second)
        if not self.validated:
            return
        metrics = trainer.callback_metrics
        train_loss, val_loss = metrics.get("train/loss_epoch"), metrics.get("val/loss")
        marker = ""
        if val_loss is not None and val_loss.item() < self.best:
            self.best, marker = val_loss.item(), "best"
        train = f"{train_loss.item():.4f}" if train_loss is not None else "-"
        val = f"{val_loss.item():.4f}" if val_loss is not None else "-"
        pl_module.print(
            f"[Epoch {trainer.current_epoch + 1:>3}] train {train}  val {val}  {marker:4} | "
            f"{_hms(elapsed)}  {epochs_per_second:.3f} epochs/s  {samples_per_second:.0f} samples/s"
        )

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict["best"]


class Diverged(UserError):
    """The training loss became NaN or infinite."""


class StopOnDivergence(L.Callback):
    """Stops the run when a training loss was NaN or infinite. Each step only updates a flag on the
    device; the host reads it once per epoch, before validation (or at the epoch's end), which
    Lightning runs before ModelCheckpoint saves: the last checkpoint stays the last good one."""

    def __init__(self) -> None:
        self.bad: torch.Tensor | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.bad = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bad = ~torch.isfinite(outputs["loss"].detach())
        self.bad = bad if self.bad is None else self.bad | bad

    def _check(self, trainer: L.Trainer) -> None:
        if self.bad is not None and bool(self.bad):
            last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was saved before"
            raise Diverged(f"training diverged: the loss became NaN or infinite in epoch {trainer.current_epoch + 1} (too high a learning rate? lower optimizer.lr); {kept}")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)


class ValidationImages(L.Callback):
    """At each validation: a grid of fixed validation digits (row 1 clean, row 2 noisy, row 3
    reconstructed) and, for a 2-D latent space, a scatter of validation codes coloured by digit.
    Both go to TensorBoard (when it is the logger) and to PNG files in `output_dir`."""

    def __init__(self, output_dir: str | Path, num_images: int = 10, noise_seed: int = 1234) -> None:
        self.output_dir = Path(output_dir)
        self.num_images = num_images
        self.noise_seed = noise_seed
        self.codes: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.fixed_images: torch.Tensor | None = None

    def _fixed_images(self, trainer: L.Trainer) -> torch.Tensor:
        """The first validation image of each digit, topped up with the first others if needed."""
        if self.fixed_images is None:
            images, labels = trainer.datamodule.val_set.tensors
            picks = [int(torch.nonzero(labels == d)[0]) for d in range(10) if (labels == d).any()]
            picks += [i for i in range(len(labels)) if i not in picks][: max(0, self.num_images - len(picks))]
            self.fixed_images = images[picks[: self.num_images]]
        return self.fixed_images

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.codes, self.labels = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if outputs["z"].shape[1] == 2:
            self.codes.append(outputs["z"].float().cpu())
            self.labels.append(outputs["y"].cpu())

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        images = self._fixed_images(trainer).to(pl_module.device)
        clean, _ = trainer.datamodule.on_after_batch_transfer((images, None), 0)  # the conversion batches get
        noisy = pl_module.corruption(clean, torch.Generator(device=clean.device).manual_seed(self.noise_seed))
        recon = pl_module(noisy).float()
        grid = make_grid(torch.cat([clean, noisy, recon]).cpu(), nrow=len(clean), pad_value=1.0)
        save_image(torch.nn.functional.interpolate(grid[None], scale_factor=3)[0], self.output_dir / "reconstructions.png")
        tensorboard = self._tensorboard(trainer)
        if tensorboard is not None:
            tensorboard.add_image("val/reconstructions", grid, trainer.global_step)
        if self.codes:
            figure = latent_scatter(torch.cat(self.codes), torch.cat(self.labels), f"validation latent space, epoch {trainer.current_epoch + 1}")
            figure.savefig(self.output_dir / "latent.png", dpi=100)
            if tensorboard is not None:
                tensorboard.add_figure("val/latent", figure, trainer.global_step)  # closes the figure
            else:
                plt.close(figure)

    @staticmethod
    def _tensorboard(trainer: L.Trainer):
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None


def latent_scatter(codes: torch.Tensor, labels: torch.Tensor, title: str, axes: tuple[str, str] = ("z[0]", "z[1]")) -> plt.Figure:
    """A scatter of 2-D points (latent codes or a 2-D map of them), one colour per digit."""
    figure, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    figure.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(xlabel=axes[0], ylabel=axes[1], title=title)
    figure.tight_layout()
    return figure
