"""The LightningModule: a network, a variant, a corruption r(x) and a reconstruction loss.

Training minimises the variant's loss (autoencoder.models.variants) for the corrupted batch r(x)
against the clean one: L(x, g(h(r(x)))) for a plain autoencoder, plus a penalty for a sparse or
contractive one, the negative ELBO for a VAE (noise 0 gives the non-denoising version of each). The
noise is drawn on the batch's device. Validation and test noise (and a VAE's posterior samples) are
seeded per batch, so their losses are comparable from epoch to epoch and run to run.

The module is built from configs (`_target_` plus arguments) rather than from built objects, and
saves them as its hyperparameters: `LitAutoencoder.load_from_checkpoint(path)` rebuilds the same
network with no other argument. It asks the network only for `encode` and `decode`
(autoencoder.models.networks.Autoencoder), so it knows nothing of the architecture, and the
variant for its loss terms and codes, so it knows nothing of the objective.

Two speed options, measured in docs/benchmarks.md: `channels_last` stores the conv weights as NHWC,
which oneDNN (CPU) and cuDNN run faster; `compile` runs the network through torch.compile (true, or
a mode name).

With a transformation corruption (autoencoder.models.corruption.Transformations), a
`transform_head_weight` > 0 adds a linear head on the code that predicts which transformation of the
set made the input, trained jointly by that weight times its cross-entropy (GeoTrans's task): its
log-likelihood of the right transformation is an anomaly score (autoencoder.evaluation.scores).
"""

from collections.abc import Mapping
from functools import partial
from typing import Annotated

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn
from typing_extensions import override

from autoencoder.config.validation import integer, number
from autoencoder.models.corruption import Transformations
from autoencoder.models.variants import Plain
from autoencoder.utils.errors import UserError


def _plain(config: Mapping) -> dict:
    """A config as plain dicts and lists: what a checkpoint can hold and weights_only can read."""
    return OmegaConf.to_container(OmegaConf.create(config), resolve=True)


class LitAutoencoder(L.LightningModule):
    """Trains the network `net` to undo `corruption`; logs train/val/test loss and loss terms.

    `net`, `variant`, `corruption` and `optimizer` are configs: an architecture
    (autoencoder.models.networks), a variant (autoencoder.models.variants; none is the plain
    autoencoder), a corruption (autoencoder.models.corruption) and a partial optimizer (called
    with the parameters). `loss` (mse or bce) is the reconstruction loss, for a VAE its likelihood.
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
        eval_noise_seed: Annotated[int, integer(0)] = 0,
        channels_last: bool = False,
        compile: bool | str = False,
        variant: Mapping | None = None,
        transform_head_weight: Annotated[float, number(0)] = 0.0,
    ):
        super().__init__()
        net, corruption, optimizer, scheduler, variant = (_plain(c or {}) for c in (net, corruption, optimizer, scheduler, variant))
        self.save_hyperparameters()
        self.variant = instantiate(variant) if variant else Plain()
        grid = {"grid": True} if self.variant.grid else {}  # asked only of the architectures a grid variant runs on
        self.net = instantiate(net, heads=self.variant.heads, **grid)
        self.corruption = instantiate(corruption)
        if isinstance(self.corruption, Transformations):
            self.corruption.check(self.net.input_shape)
        self.transform_head = self._transform_head(transform_head_weight)
        self.example_input_array = torch.zeros(1, *self.net.input_shape)  # for the summary's FLOPs
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:  # the two methods training calls; the state_dict keys stay those of the plain network
            mode = None if compile is True else compile
            self.net.encode, self.net.decode = torch.compile(self.net.encode, mode=mode), torch.compile(self.net.decode, mode=mode)

    def _transform_head(self, weight: float) -> nn.Linear | None:
        """The linear map from a code to the logits of which transformation made the input, if wanted."""
        if not weight:
            return None
        if not isinstance(self.corruption, Transformations):
            raise UserError("module.transform_head_weight > 0 predicts the transformation: it needs a transformation corruption (corruption=rotation, ...)")
        if self.corruption.count < 2:
            raise UserError("module.transform_head_weight > 0 predicts the transformation: it needs a set of at least two to tell apart, and this has one")
        return nn.Linear(self.net.code_size, self.corruption.count)

    def transform_logits(self, x: Tensor) -> Tensor:
        """The head's logits (B, count) of which transformation of the set made each input image."""
        return self.transform_head(self.encode(x))

    def encode(self, x: Tensor) -> Tensor:
        """Codes (B, code_size) of images (B, C, H, W): for a VAE the posterior means, for a VQ-VAE
        its quantised grid, flat."""
        return self.variant.code(self.net.encode(x))

    def decode(self, z: Tensor) -> Tensor:
        return self.net.decode(z)

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def eval_generator(self, batch_idx: int, device: torch.device) -> torch.Generator:
        """A generator seeded by batch index: the same noise at every validation or test pass."""
        return torch.Generator(device=device).manual_seed(self.hparams.eval_noise_seed + batch_idx)

    def _loss(self, x: Tensor, generator: torch.Generator | None, stage: str, batch_idx: int = 0) -> Tensor:
        """The variant's loss for the corrupted batch against the clean one; each of its parts, and
        each of the variant's statistics (not part of the loss), is logged under `<stage>/`."""
        train = stage == "train"
        progress = self.current_epoch + batch_idx / max(1, self.trainer.num_training_batches) if train and self._trainer else None
        if self.transform_head is None:
            terms = self.variant.terms(self.net, self.corruption(x, generator), x, self.hparams.loss, generator, progress)
        else:  # the head learns which transformation each image underwent, from its code
            index = self.corruption.draw(x, generator)  # (B,)
            inputs, head = self.corruption.apply(x, index, generator), partial(self._transform_terms, index)
            terms = self.variant.terms(self.net, inputs, x, self.hparams.loss, generator, progress, head)
        loss = sum(terms.values())
        # Not on the progress bar: Lightning would read its value on the host (a GPU sync) every step.
        # Val and test losses are averaged over DDP processes; the train loss is the first one's.
        self.log(f"{stage}/loss", loss, on_step=train, on_epoch=True, prog_bar=not train, sync_dist=not train)
        figures = (terms if len(terms) > 1 else {}) | self.variant.statistics()
        if figures:
            self.log_dict({f"{stage}/{name}": value for name, value in figures.items()}, on_epoch=True, sync_dist=not train)
        return loss

    def _transform_terms(self, index: Tensor, z: Tensor) -> dict[str, Tensor]:
        """The head's weighted cross-entropy for the codes `z` (B, code_size) of inputs made by the
        transformations `index` (B,)."""
        return {"transform": self.hparams.transform_head_weight * F.cross_entropy(self.transform_head(z).float(), index)}

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._loss(batch[0], None, "train", batch_idx)

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
