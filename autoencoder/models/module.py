"""The LightningModule: a network, a corruption r(x) and a reconstruction loss.

Training minimises L(x, g(h(r(x)))) plus the network's own loss terms: the network sees the
corrupted batch and is scored against the clean one (noise 0 gives a plain autoencoder). The noise
is drawn on the batch's device. Validation and test noise is seeded per batch, so their losses are
comparable from epoch to epoch and run to run.

The module is built from configs (`_target_` plus arguments) rather than from built objects, and
saves them as its hyperparameters: `LitAutoencoder.load_from_checkpoint(path)` rebuilds the same
network with no other argument. It asks the network only for `encode`, `decode` and `loss_terms`
(autoencoder.models.networks.Autoencoder), so it knows nothing of the architecture.

Two speed options, measured in docs/benchmarks.md: `channels_last` stores the conv weights as NHWC,
which oneDNN (CPU) and cuDNN run faster; `compile` runs the network through torch.compile (true, or
a mode name).
"""

from collections.abc import Mapping

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor
from typing_extensions import override

LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}


def _plain(config: Mapping) -> dict:
    """A config as plain dicts and lists: what a checkpoint can hold and weights_only can read."""
    return OmegaConf.to_container(OmegaConf.create(config), resolve=True)


class LitAutoencoder(L.LightningModule):
    """Trains the network `net` to undo `corruption`; logs train/val/test loss and loss terms.

    `net`, `corruption` and `optimizer` are configs: a network (autoencoder.models.networks), a
    corruption (autoencoder.models.corruption) and a partial optimizer (called with the parameters).
    `scheduler` (conf/scheduler/), if any, is a partial learning-rate scheduler (called with the
    optimizer, and with the run's number of optimizer steps as its `steps_argument`) plus how
    Lightning steps it (`lightning`: interval, frequency, monitor)."""

    def __init__(
        self,
        net: Mapping,
        corruption: Mapping,
        optimizer: Mapping,
        scheduler: Mapping | None = None,
        loss: str = "mse",
        eval_noise_seed: int = 0,
        channels_last: bool = False,
        compile: bool | str = False,
    ):
        super().__init__()
        net, corruption, optimizer, scheduler = _plain(net), _plain(corruption), _plain(optimizer), _plain(scheduler or {})
        self.save_hyperparameters()
        self.net = instantiate(net)
        self.corruption = instantiate(corruption)
        self.example_input_array = torch.zeros(1, *self.net.input_shape)  # for the summary's FLOPs
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:  # in place: the state_dict keys stay those of the plain network
            self.net.compile(mode=None if compile is True else compile)

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def reconstruction_loss(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        """The loss in fp32 whatever the autocast precision (BCE is unsafe under autocast)."""
        with torch.autocast(self.device.type, enabled=False):
            return LOSSES[self.hparams.loss](reconstruction.float(), target)

    def eval_generator(self, batch_idx: int, device: torch.device) -> torch.Generator:
        """A generator seeded by batch index: the same noise at every validation or test pass."""
        return torch.Generator(device=device).manual_seed(self.hparams.eval_noise_seed + batch_idx)

    def _loss(self, x: Tensor, generator: torch.Generator | None, stage: str) -> Tensor:
        """Reconstruction loss of the corrupted batch against the clean one, plus the network's
        loss terms; each part is logged under `<stage>/`."""
        z = self.net.encode(self.corruption(x, generator))
        terms = {"reconstruction": self.reconstruction_loss(self.net.decode(z), x), **self.net.loss_terms(x, z)}
        loss = sum(terms.values())
        train = stage == "train"
        # Not on the progress bar: Lightning would read its value on the host (a GPU sync) every step.
        # Val and test losses are averaged over DDP processes; the train loss is the first one's.
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=not train, sync_dist=not train)
        if len(terms) > 1:
            self.log_dict({f"{stage}/{name}": value for name, value in terms.items()}, on_epoch=True, sync_dist=not train)
        return loss

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch[0], None, "train")

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch[0], self.eval_generator(batch_idx, batch[0].device), "val")

    @override
    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch[0], self.eval_generator(batch_idx, batch[0].device), "test")

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        optimizer = instantiate(self.hparams.optimizer)(self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        config = dict(self.hparams.scheduler)
        stepping, steps_argument = config.pop("lightning"), config.pop("steps_argument", None)
        # trainer.max_epochs x the batches of an epoch (after limit_train_batches and accumulation)
        length = {steps_argument: int(self.trainer.estimated_stepping_batches)} if steps_argument else {}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": instantiate(config)(optimizer, **length), **stepping}}
