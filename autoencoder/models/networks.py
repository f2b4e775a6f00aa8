"""The networks: the lecture's convolutional autoencoder and an MLP baseline, under one contract.

Both map images (B, C, H, W) in [0, 1] to a latent vector (B, latent_dim) and back through a
Sigmoid. The conv decoder mirrors the encoder; every feature-map size is derived from the input
shape with the two size formulas below, so no 7x7 literal hides in the code and other input sizes
(e.g. 32x32) come back at their own size.
"""

from collections.abc import Sequence
from math import prod
from typing import Annotated

from torch import Tensor, nn

from autoencoder.config.validation import integer, integers
from autoencoder.models.sizes import conv_output_size, output_padding_for
from autoencoder.utils.errors import UserError

# Every architecture's two settings: the code's size, and the images' (channels, height, width).
LatentDim = Annotated[int, integer(1)]
InputShape = Annotated[Sequence[int], integers(1, length=3)]


class Autoencoder(nn.Module):
    """The contract the LightningModule relies on: `encode` maps images (B, C, H, W) to the
    encoder's output (B, heads * code_size), and `decode` maps codes (B, code_size) back to images
    in [0, 1]. `heads` is set by the variant (autoencoder.models.variants): 1 for a code, 2 for a
    Gaussian encoder's mean and log-variance. A new architecture is a subclass (with one YAML in
    conf/model/) whose constructor takes `latent_dim`, `input_shape`, `heads` and `grid`.

    `grid` is also the variant's: True asks for a code that is a grid of latent_dim-vectors, one per
    place of a feature map (a VQ-VAE quantises each). Codes stay flat, (B, code_size) with
    code_size = prod(code_shape), so that everything that reads codes (features, figures, probes,
    mixtures, interpolation) reads them alike; `code_shape` is (latent_dim,) for a flat code and
    (latent_dim, h, w) for a grid, whose flat code is the grid's channel-major flattening (as
    nn.Flatten lays out (D, h, w)). An architecture that cannot give a grid refuses grid=True."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, input_shape: tuple[int, int, int], code_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.input_shape = input_shape
        self.code_shape = code_shape or (latent_dim,)
        self.code_size = prod(self.code_shape)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of `x` by a one-head network, for plain PyTorch loops (the benchmark's
        lecture loop); training goes through the variant, which also reads two heads."""
        return self.decode(self.encode(x))


class ConvAutoencoder(Autoencoder):
    """The lecture's network: conv stages with BatchNorm and LeakyReLU, a linear bottleneck, and a
    mirrored decoder of transposed convs ending in Sigmoid. `fc_hidden` puts fully connected
    layers between the conv features and the code (empty in the lecture): with a tiny latent space
    a single linear map to and from it leaves the decoder only a rank-`latent_dim` start.

    With `grid` the bottleneck is a 1x1 conv to latent_dim channels instead of the linear map, so
    the code is a (latent_dim, h, w) grid over the last feature map (7x7 for MNIST), and the decoder
    starts with a 1x1 conv back to the feature channels; there is then no place for `fc_hidden`."""

    def __init__(
        self,
        latent_dim: LatentDim,
        input_shape: InputShape = (1, 28, 28),
        channels: Annotated[Sequence[int], integers(1)] = (32, 64, 64),
        strides: Annotated[Sequence[int], integers(1)] = (1, 2, 2),
        kernel_size: Annotated[int, integer(1)] = 3,
        padding: Annotated[int, integer(0)] = 1,
        fc_hidden: Annotated[Sequence[int], integers(1, empty=True)] = (),
        heads: int = 1,
        grid: bool = False,
    ):
        input_shape = tuple(input_shape)
        if grid and fc_hidden:
            raise UserError(f"model.fc_hidden={list(fc_hidden)} adds linear layers before a flat code, and this variant codes a grid: leave it empty")
        if len(channels) != len(strides) or not channels:
            raise UserError(f"model.channels and model.strides need the same non-zero length, got {list(channels)} and {list(strides)}")
        in_channels = [input_shape[0], *channels[:-1]]
        heights, widths = [input_shape[1]], [input_shape[2]]
        for s in strides:
            heights.append(conv_output_size(heights[-1], kernel_size, s, padding))
            widths.append(conv_output_size(widths[-1], kernel_size, s, padding))
        if heights[-1] < 1 or widths[-1] < 1:
            raise UserError(f"model.input_shape {list(input_shape)} is too small for {len(strides)} conv stages")
        bottleneck = (channels[-1], heights[-1], widths[-1])

        encoder: list[nn.Module] = []
        for c_in, c_out, s in zip(in_channels, channels, strides, strict=True):
            encoder += [nn.Conv2d(c_in, c_out, kernel_size, s, padding), nn.BatchNorm2d(c_out), nn.LeakyReLU()]
        if grid:  # (B, C, h, w) -> (B, heads * latent_dim, h, w) -> flat (B, heads * latent_dim * h * w)
            code_shape = (latent_dim, *bottleneck[1:])
            encoder += [nn.Conv2d(channels[-1], heads * latent_dim, 1), nn.Flatten()]
            decoder: list[nn.Module] = [nn.Unflatten(1, code_shape), nn.Conv2d(latent_dim, channels[-1], 1), nn.LeakyReLU()]
        else:
            code_shape = (latent_dim,)
            dims = [prod(bottleneck), *fc_hidden, latent_dim]
            encoder += [nn.Flatten(), *_linear_stack([*dims[:-1], heads * latent_dim])]
            decoder = [*_linear_stack(dims[::-1]), nn.Unflatten(1, bottleneck), nn.LeakyReLU()]
        for i in reversed(range(len(channels))):
            v = (
                output_padding_for(heights[i + 1], heights[i], kernel_size, strides[i], padding),
                output_padding_for(widths[i + 1], widths[i], kernel_size, strides[i], padding),
            )
            decoder.append(nn.ConvTranspose2d(channels[i], in_channels[i], kernel_size, strides[i], padding, output_padding=v))
            decoder += [nn.BatchNorm2d(in_channels[i]), nn.LeakyReLU()] if i > 0 else [nn.Sigmoid()]
        super().__init__(nn.Sequential(*encoder), nn.Sequential(*decoder), latent_dim, input_shape, code_shape)


class MLPAutoencoder(Autoencoder):
    """A fully connected autoencoder: a baseline that ignores image structure, so it has no grid to code."""

    def __init__(
        self,
        latent_dim: LatentDim,
        input_shape: InputShape = (1, 28, 28),
        hidden: Annotated[Sequence[int], integers(1, empty=True)] = (512, 256),
        heads: int = 1,
        grid: bool = False,
    ):
        if grid:
            raise UserError("model=mlp gives a flat code, and this variant (variant=vqvae) codes a grid over a feature map: use model=conv")
        input_shape = tuple(input_shape)
        dims = [prod(input_shape), *hidden, latent_dim]
        encoder = [nn.Flatten(), *_linear_stack([*dims[:-1], heads * latent_dim])]
        decoder = [*_linear_stack(dims[::-1]), nn.Sigmoid(), nn.Unflatten(1, input_shape)]
        super().__init__(nn.Sequential(*encoder), nn.Sequential(*decoder), latent_dim, input_shape)


def _linear_stack(dims: Sequence[int]) -> list[nn.Module]:
    """Linear layers through `dims`, with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(dims, dims[1:], strict=False):
        layers += [nn.Linear(a, b), nn.LeakyReLU()]
    return layers[:-1]
