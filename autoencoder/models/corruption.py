"""The corruption r(x) of a denoising autoencoder.

Each corruption is a parameter-free module applied by the LightningModule on the batch's own
device. A noise corruption (`Corruption`) adds noise of strength `noise`, 0 turning it into the
identity (a plain autoencoder). A transformation (`Transformations`: rotation, flip, translation,
graying) applies one of a finite set to each image, drawn at random; `Chain` runs several, a
transformation then noise, say. An optional generator makes the draws reproducible (fixed
validation noise, image grids, tests).
"""

from typing import Annotated

import torch
from torch import Tensor, nn

from autoencoder.config.validation import Rule, integer, number, strings
from autoencoder.utils.errors import UserError

# The transformations' settings.
QUARTER_TURNS = Rule(
    lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and len(set(v)) == len(v) and all(type(d) is int and d in (0, 90, 180, 270) for d in v),
    "a non-empty list of distinct angles from 0, 90, 180, 270",
)
FLIPS = ("none", "horizontal", "vertical", "both")
STEPS = Rule(
    lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(s, dict) and "_target_" in s for s in v),
    "a non-empty list of corruption configs, each with a _target_",
)


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


class Transformations(nn.Module):
    """A finite set of transformations, one drawn per image: a corruption that erases an attribute
    (orientation, left-right layout, colour) rather than adding noise. An autoencoder trained to
    undo it restores only images whose attribute it has learnt from the normal class, so the
    restoration error over the whole set is an anomaly score (ARNet, Ye et al. 2022; GeoTrans,
    Golan & El-Yaniv 2018). Transform `index` k of the set is numbered 0..count-1; a chain of
    corruptions (`Chain`) numbers the combinations of its transformations."""

    @property
    def count(self) -> int:
        """The number of transformations in the set."""
        return len(self.names)

    @property
    def names(self) -> list[str]:
        """What each transformation of the set does, in index order (for figures)."""
        raise NotImplementedError

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise a UserError if images of this (C, H, W) shape cannot be so transformed."""

    def transform(self, x: Tensor, index: Tensor) -> Tensor:
        """Image i of `x` (B, C, H, W) under transformation index[i] of the set; `index` (B,)."""
        raise NotImplementedError

    def apply(self, x: Tensor, index: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The corruption with the transformations `index` (B,): they alone here, a chain's noise too."""
        return self.transform(x, index)

    def draw(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A transformation index per image of `x`, uniform over the set: (B,); the same generator
        state gives the same draws (validation is seeded per batch, as noise is)."""
        return torch.randint(self.count, (len(x),), generator=generator, device=x.device)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, self.draw(x, generator), generator)


def _each(x: Tensor, index: Tensor, functions: list) -> Tensor:
    """Image i of `x` through functions[index[i]]: each function runs once, on its own images."""
    out = torch.empty_like(x)
    for k, function in enumerate(functions):
        chosen = index == k
        if chosen.any():
            out[chosen] = function(x[chosen])
    return out


class Rotation(Transformations):
    """Rotation counter-clockwise by one of `degrees`, multiples of 90: out[i, j] = x[j, W-1-i] for 90.
    Square images only, for 90 and 270."""

    def __init__(self, degrees: Annotated[tuple[int, ...], QUARTER_TURNS] = (0, 90, 180, 270)):
        super().__init__()
        self.degrees = tuple(degrees)

    @property
    def names(self) -> list[str]:
        return [f"rotated {d}" for d in self.degrees]

    def check(self, shape: tuple[int, ...]) -> None:
        if shape[-1] != shape[-2] and any(d % 180 for d in self.degrees):
            raise UserError(f"corruption.degrees: rotating by 90 or 270 degrees needs square images, and these are {shape[-2]}x{shape[-1]}")

    def transform(self, x: Tensor, index: Tensor) -> Tensor:
        return _each(x, index, [lambda y, k=d // 90: torch.rot90(y, k, dims=(-2, -1)) for d in self.degrees])

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}"


FLIP_DIMS = {"none": (), "horizontal": (-1,), "vertical": (-2,), "both": (-2, -1)}


class Flip(Transformations):
    """A mirror image: `horizontal` swaps left and right, `vertical` top and bottom, `both` is the
    rotation by 180 degrees, `none` the image itself."""

    def __init__(self, flips: Annotated[tuple[str, ...], strings(options=FLIPS)] = ("none", "horizontal")):
        super().__init__()
        self.flips = tuple(flips)

    @property
    def names(self) -> list[str]:
        return [f"flipped {f}" for f in self.flips]

    def transform(self, x: Tensor, index: Tensor) -> Tensor:
        return _each(x, index, [lambda y, dims=FLIP_DIMS[f]: y.flip(dims) if dims else y for f in self.flips])

    def extra_repr(self) -> str:
        return f"flips={self.flips}"


def translate(x: Tensor, dy: int, dx: int) -> Tensor:
    """`x` (..., H, W) moved down by dy and right by dx pixels (up, left if negative); the uncovered
    border is 0 and what leaves the frame is lost: out[i, j] = x[i - dy, j - dx]."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


class Translation(Transformations):
    """A move by `shift` pixels or none along each axis: the nine offsets (dy, dx) in {0, -shift, shift}^2,
    as GeoTrans does, the image itself first."""

    def __init__(self, shift: Annotated[int, integer(1)] = 2):
        super().__init__()
        self.shift = shift
        steps = (0, -self.shift, self.shift)
        self.offsets = [(dy, dx) for dy in steps for dx in steps]

    @property
    def names(self) -> list[str]:
        return [f"moved {dy:+d}, {dx:+d}" for dy, dx in self.offsets]

    def check(self, shape: tuple[int, ...]) -> None:
        if self.shift >= min(shape[-2:]):
            raise UserError(f"corruption.shift={self.shift} moves a {shape[-2]}x{shape[-1]} image out of the frame: it must be less than {min(shape[-2:])}")

    def transform(self, x: Tensor, index: Tensor) -> Tensor:
        return _each(x, index, [lambda y, o=o: translate(y, *o) for o in self.offsets])

    def extra_repr(self) -> str:
        return f"shift={self.shift}"


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class Grayscale(Transformations):
    """Colour erased: each pixel's luma in all three channels (ARNet's graying). A set of one."""

    names = ["gray"]

    def check(self, shape: tuple[int, ...]) -> None:
        if shape[0] != 3:
            raise UserError(f"corruption=grayscale erases colour, and these images have {shape[0]} channel(s), not 3: use it on colour data (data=cifar10)")

    def transform(self, x: Tensor, index: Tensor) -> Tensor:
        luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * luma).sum(-3, keepdim=True).expand_as(x).contiguous()


class Chain(Transformations):
    """Corruptions one after another, `steps` in order (erase an attribute, then add noise): its set
    is every combination of its transformations' own, transformation index k the mixed-radix number
    whose digit for each transformation step is that step's index (the first step's the least
    significant). Its noise steps are no part of the set: `transform` leaves them out."""

    def __init__(self, steps: Annotated[list, STEPS]):
        super().__init__()
        self.steps = nn.ModuleList(steps)
        if not any(isinstance(step, Transformations) for step in self.steps):
            raise UserError("corruption.steps must include a transformation (Rotation, Flip, Translation, Grayscale); for noise alone, use that corruption")

    @property
    def names(self) -> list[str]:
        names = [""]
        for step in self.steps:  # the first step's digit varies fastest
            if isinstance(step, Transformations):
                names = [f"{first}, {later}" if first else later for later in step.names for first in names]
        return names

    def check(self, shape: tuple[int, ...]) -> None:
        for step in self.steps:
            if isinstance(step, Transformations):
                step.check(shape)

    def _run(self, x: Tensor, index: Tensor, noise: bool, generator: torch.Generator | None) -> Tensor:
        for step in self.steps:
            if isinstance(step, Transformations):
                x, index = step.apply(x, index % step.count, generator), index // step.count
            elif noise:
                x = step(x, generator)
        return x

    def transform(self, x: Tensor, index: Tensor) -> Tensor:
        return self._run(x, index, noise=False, generator=None)

    def apply(self, x: Tensor, index: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self._run(x, index, noise=True, generator=generator)
