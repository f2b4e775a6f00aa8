"""The LightningModule: an encoder/decoder network, a corruption r(x) and a reconstruction loss.

Training minimises L(x, g(h(r(x)))): the network sees the corrupted batch and is scored against the
clean one (noise 0 gives a plain autoencoder). The noise is drawn on the batch's device. Validation
and test noise is seeded per batch, so their losses are comparable from epoch to epoch and run to run.

Two speed options, measured in docs/benchmarks.md: `channels_last` stores the conv weights as NHWC,
which oneDNN (CPU) and cuDNN run faster; `compile` runs the network through torch.compile (true, or a mode name).
"""

from collections.abc import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoder.corruption import Corruption
from autoencoder.errors import UserError
from autoencoder.models import Autoencoder

LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}
# false, true (torch.compile's default mode) or one of its modes.
COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class LitAutoencoder(L.LightningModule):
    """Trains `net` to undo `corruption`; logs train/val/test loss."""

    def __init__(
        self,
        net: Autoencoder,
        corruption: Corruption,
        optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
        loss: str = "mse",
        eval_noise_seed: int = 0,
        channels_last: bool = False,
        compile: bool | str = False,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise UserError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.net = net
        self.corruption = corruption
        self.optimizer_factory = optimizer
        self.loss_name = loss
        self.eval_noise_seed = eval_noise_seed
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile not in COMPILE_MODES:
            raise UserError(f"compile must be one of {', '.join(map(str, COMPILE_MODES))}, got {compile!r}")
        if compile:  # in place: the state_dict keys stay those of the plain network
            self.net.compile(mode=None if compile is True else compile)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def reconstruction_loss(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        """The loss in fp32 whatever the autocast precision (BCE is unsafe under autocast)."""
        with torch.autocast(self.device.type, enabled=False):
            return LOSSES[self.loss_name](reconstruction.float(), target)

    def eval_generator(self, batch_idx: int, device: torch.device) -> torch.Generator:
        """A generator seeded by batch index: the same noise at every validation or test pass."""
        return torch.Generator(device=device).manual_seed(self.eval_noise_seed + batch_idx)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, _ = batch
        loss = self.reconstruction_loss(self.net(self.corruption(x)), x)
        # Not on the progress bar: Lightning would read its value on the host (a GPU sync) every step.
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def _eval_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> dict[str, Tensor]:
        x, y = batch
        z = self.net.encoder(self.corruption(x, self.eval_generator(batch_idx, x.device)))
        loss = self.reconstruction_loss(self.net.decoder(z), x)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)  # averaged over DDP processes
        return {"loss": loss, "z": z, "y": y}

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, batch_idx, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
