"""Callbacks for what the lecture's trainer showed: speed, one summary line per validation, and
clean / noisy / reconstructed image grids plus a latent scatter at each validation, and a VAE's
samples from its prior; and a guard that stops a diverged run before its broken weights reach a
checkpoint.

Everything here runs at epoch or validation boundaries, never per training step, so it adds no
cost (and no device sync) to the training loop beyond counting samples.
"""

import math
import time
from pathlib import Path
from typing import Annotated

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.model_summary.model_summary import UNKNOWN_SIZE, get_human_readable_count
from lightning.pytorch.utilities.model_summary.model_summary import ModelSummary as Summary
from torchvision.utils import make_grid, save_image
from typing_extensions import override

from autoencoder.config.validation import integer
from autoencoder.data.images import class_names
from autoencoder.utils.errors import UserError
from autoencoder.utils.figures import latent_scatter
from autoencoder.utils.progress import Stopwatch, hms


class EpochSummary(L.Callback):
    """Measures training speed (samples/s over training time only, epochs/s over wall time), logs
    it, and prints a line per validation:
    `[Epoch   3] train 0.0412  val 0.0398  best | 00:01:12  0.05 epochs/s  1820 samples/s`.

    `history` keeps each validated epoch's val loss with the wall seconds since the fit began
    (validation included, summed over resumes): what a time-to-quality figure is read from."""

    def __init__(self) -> None:
        self.best = math.inf
        self.train_seconds = 0.0
        self.train_samples = 0
        self.history: list[dict] = []  # {"epoch", "val_loss", "seconds"} per validated epoch

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()
        self.first_epoch = trainer.current_epoch
        self.seconds_before = self.history[-1]["seconds"] if self.history else 0.0  # a resumed run's
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts none

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_samples = 0
        self.epoch_clock = Stopwatch()
        self.validated = False

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.epoch_samples += len(batch[0]) * trainer.world_size  # every DDP process takes a batch

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.epoch_clock.pause()

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated = True
            self.epoch_clock.resume()  # training goes on after a mid-epoch validation

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_clock.pause()
        epoch_seconds = self.epoch_clock.seconds
        self.train_samples += self.epoch_samples
        self.train_seconds += epoch_seconds
        elapsed = time.perf_counter() - self.fit_start
        epochs_per_second = (trainer.current_epoch + 1 - self.first_epoch) / elapsed
        samples_per_second = self.epoch_samples / epoch_seconds if epoch_seconds else 0.0
        pl_module.log("speed/train_samples_per_s", samples_per_second)
        pl_module.log("speed/epochs_per_s", epochs_per_second)
        if not self.validated:
            return
        metrics = trainer.callback_metrics
        train_loss, val_loss = metrics.get("train/loss_epoch"), metrics.get("val/loss")
        marker = ""
        if val_loss is not None and val_loss.item() < self.best:
            self.best, marker = val_loss.item(), "best"
        if val_loss is not None:
            self.history.append({"epoch": trainer.current_epoch + 1, "val_loss": val_loss.item(), "seconds": round(self.seconds_before + elapsed, 2)})
        train = f"{train_loss.item():.4f}" if train_loss is not None else "-"
        val = f"{val_loss.item():.4f}{pl_module.variant.unit}" if val_loss is not None else "-"
        pl_module.print(
            f"[Epoch {trainer.current_epoch + 1:>3}] train {train}  val {val}  {marker:4} | "
            f"{hms(elapsed)}  {epochs_per_second:.3f} epochs/s  {samples_per_second:.0f} samples/s"
        )

    @override
    def state_dict(self) -> dict:
        return {"best": self.best, "history": self.history}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict["best"]
        self.history = state_dict.get("history", [])  # checkpoints written before it had one


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting epochs from 1 as the console lines do ("Epoch 1/4")."""

    @override
    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}" + (f"/{self.trainer.max_epochs}" if self.trainer.max_epochs is not None else "")
        return f"{description:{len(self.validation_description)}}"  # as wide as "Validation": no flicker


def _per_image(size: list[int]) -> str:
    """A layer's input or output size for the summary's one example image: 1x28x28, not [1, 1, 28, 28]."""
    return "x".join(str(n) for n in size[1:])


class ModelSize(ModelSummary):
    """The model summary without the columns that say nothing here. Lightning's table lists the
    module's direct children, which the forward pass calls through `encode`/`decode` rather than
    `__call__`, so their FLOPs and sizes were 0 and "?". This prints the parameters, the size and
    the FLOPs per image of the whole model and of each part the example image went through:

        model: 315 K parameters (1.3 MB), precision bf16-mixed, 23.0 M FLOPs per image
          net.encoder  Sequential  156 K parameters  11.5 M FLOPs  1x28x28 -> 32
    """

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        summary = Summary(pl_module, max_depth=self._max_depth)
        rows = [
            f"  {name}  {kind}  {get_human_readable_count(params)} parameters  {get_human_readable_count(sum(summary.flop_counts[name].values()))} FLOPs"
            f"  {_per_image(size_in)} -> {_per_image(size_out)}"
            for name, kind, params, size_in, size_out in zip(
                summary.layer_names, summary.layer_types, summary.param_nums, summary.in_sizes, summary.out_sizes, strict=True
            )
            if size_in != UNKNOWN_SIZE  # a part the forward pass never called as a module
        ]
        head = f"model: {get_human_readable_count(summary.total_parameters)} parameters ({summary.model_size:.1f} MB), precision {trainer.precision}"
        flops = f", {get_human_readable_count(summary.total_flops)} FLOPs per image" if summary.total_flops else ""
        pl_module.print("\n".join([head + flops, *rows]))


class Diverged(UserError):
    """The training loss became NaN or infinite."""


class StopOnDivergence(L.Callback):
    """Stops the run when a training loss was NaN or infinite. Each step only updates a flag on the
    device; the host reads it once per epoch, before validation (or at the epoch's end), which
    Lightning runs before ModelCheckpoint saves: the last checkpoint stays the last good one."""

    def __init__(self) -> None:
        self.bad: torch.Tensor | None = None

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.bad = None

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bad = ~torch.isfinite(outputs["loss"].detach())
        self.bad = bad if self.bad is None else self.bad | bad

    def _check(self, trainer: L.Trainer) -> None:
        if self.bad is not None and bool(self.bad):
            last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was saved before"
            raise Diverged(
                f"training diverged: the loss became NaN or infinite in epoch {trainer.current_epoch + 1} "
                f"(too high a learning rate? lower optimizer.lr); {kept}"
            )

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)


def tensorboard_of(trainer: L.Trainer):
    """The trainer's TensorBoard writer, or None when no TensorBoard logger is configured."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


class ValidationImages(L.Callback):
    """At each validation: a grid of fixed validation images (row 1 clean, row 2 noisy, row 3
    reconstructed) and, for a 2-D latent space, a scatter of the validation codes coloured by class.
    Both go to TensorBoard (when it is a logger) and to PNG files in `output_dir`.

    It sees only what the validation loader yields (float images in [0, 1] on the device, labels),
    so it works with any data module: the fixed images are the first of each class in the first
    validation, topped up with the first others when fewer classes are present."""

    def __init__(self, output_dir: str | Path, num_images: Annotated[int, integer(1)] = 10, noise_seed: Annotated[int, integer(0)] = 1234) -> None:
        self.output_dir = Path(output_dir)
        self.num_images = num_images
        self.noise_seed = noise_seed
        self.fixed_images: torch.Tensor | None = None
        self.seen = 0  # validation images looked at while choosing the fixed ones
        self.first_of_class: dict[int, tuple[int, torch.Tensor]] = {}  # label -> (position, image)
        self.first: list[tuple[int, torch.Tensor]] = []  # the first num_images (position, image)
        self.codes: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    @override
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.codes, self.labels = [], []

    @override
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        images, labels = batch
        if self.fixed_images is None:
            self._consider(images, labels)
        if pl_module.net.code_size == 2:
            self.codes.append(pl_module.encode(images).float().cpu())
            self.labels.append(labels.cpu())

    def _consider(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Remember the first image of each new class in this batch, and the first images overall."""
        positions = range(self.seen, self.seen + len(labels))
        self.seen += len(labels)
        for i, (position, label) in enumerate(zip(positions, labels.tolist(), strict=True)):
            if label not in self.first_of_class:
                self.first_of_class[label] = (position, images[i].cpu())
        self.first += [(p, images[i].cpu()) for i, p in enumerate(positions[: self.num_images - len(self.first)])]

    @override
    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self.fixed_images is None:
            picks = [self.first_of_class[label] for label in sorted(self.first_of_class)][: self.num_images]
            taken = {position for position, _ in picks}
            picks += [p for p in self.first if p[0] not in taken][: self.num_images - len(picks)]
            self.fixed_images = torch.stack([image for _, image in picks])
        self.output_dir.mkdir(parents=True, exist_ok=True)
        clean = self.fixed_images.to(pl_module.device)
        noisy = pl_module.corruption(clean, torch.Generator(device=clean.device).manual_seed(self.noise_seed))
        recon = pl_module(noisy).float()
        grid = make_grid(torch.cat([clean, noisy, recon]).cpu(), nrow=len(clean), pad_value=1.0)
        save_image(torch.nn.functional.interpolate(grid[None], scale_factor=3)[0], self.output_dir / "reconstructions.png")
        tensorboard = tensorboard_of(trainer)
        if tensorboard is not None:
            tensorboard.add_image("val/reconstructions", grid, trainer.global_step)
        if self.codes:
            labels = torch.cat(self.labels)
            title = f"validation latent space, epoch {trainer.current_epoch + 1}"
            figure = latent_scatter(torch.cat(self.codes), labels, title, class_names(trainer.datamodule, labels))
            figure.savefig(self.output_dir / "latent.png", dpi=100)
            if tensorboard is not None:
                tensorboard.add_figure("val/latent", figure, trainer.global_step, close=False)

    @override
    def state_dict(self) -> dict:
        return {"fixed_images": self.fixed_images}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.fixed_images = state_dict.get("fixed_images")


class PriorSamples(L.Callback):
    """At each validation, for a generative variant (the VAE): a grid of images decoded from
    `num_images` codes drawn from its prior, to TensorBoard as `val/prior_samples`. The codes are
    drawn on the CPU with a generator seeded by `seed` each time, so every epoch's grid (on any
    device) draws alike: for N(0, I) the same codes, and the change from one grid to the next is the
    decoder's own; a learned prior (the VampPrior's) moves its codes as it learns. Variants without
    a prior log nothing."""

    def __init__(self, num_images: Annotated[int, integer(1)] = 64, seed: Annotated[int, integer(0)] = 1234) -> None:
        self.num_images = num_images
        self.seed = seed

    @override
    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not pl_module.variant.has_prior:
            return
        tensorboard = tensorboard_of(trainer)
        if tensorboard is None:
            return
        codes = pl_module.variant.sample_prior(pl_module.net, self.num_images, torch.Generator().manual_seed(self.seed))  # (num_images, code_size)
        images = pl_module.decode(codes.to(pl_module.device)).float().cpu()  # (num_images, C, H, W)
        grid = make_grid(images, nrow=math.ceil(math.sqrt(self.num_images)), pad_value=1.0)
        tensorboard.add_image("val/prior_samples", grid, trainer.global_step)
