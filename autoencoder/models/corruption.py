"""The corruption r(x) of a denoising autoencoder.

Each corruption is a parameter-free module applied by the LightningModule on the batch's own
device; `noise` is its strength and 0 turns it into the identity (a plain autoencoder). An
optional generator makes the noise reproducible (fixed validation noise, image grids, tests).
"""

from typing import Annotated

import torch
from torch import Tensor, nn

from autoencoder.config.validation import number


class Corruption(nn.Module):
    """Base class: skips the work when `noise` is 0. `noise` lies in [0, max_noise] (checked with
    the rest of the config in autoencoder.config.validation)."""

    max_noise = float("inf")

    def __init__(self, noise: Annotated[float, number(0)] = 0.0):
        super().__init__()
        self.noise = float(noise)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x if self.noise == 0 else self.corrupt(x, generator)

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"noise={self.noise:g}"


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class Gaussian(Corruption):
    """The lecture's r(x): x + noise * N(0, 1), clipped to [0, 1]."""

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        gauss = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + self.noise * gauss).clamp_(0.0, 1.0)


class Masking(Corruption):
    """Masking noise (Vincent et al. 2008): a `noise` fraction of pixels, chosen at random, set to 0."""

    max_noise = 1.0

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return x * (_uniform(x, generator) >= self.noise)


class SaltPepper(Corruption):
    """Salt-and-pepper noise: a `noise` fraction of pixels set to 0 or 1 with equal chance."""

    max_noise = 1.0

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        u = _uniform(x, generator)
        hit = u < self.noise
        salt = u < self.noise / 2  # half of the hit pixels, independent of the image
        return torch.where(hit, salt.to(x.dtype), x)
