"""A learned prior over a VQ-VAE's grid of code indices: a PixelCNN (van den Oord et al., 2016).

p(grid) = prod_i p(k_i | k_<i) over the grid's places in raster order (row by row, left to right):
convolutions whose kernels are masked so that the output at a place sees only the places before it,
then K logits per place. A 7x7 grid of K classes is a small image, and this is the natural model
for it: all the conditionals come from one pass, so training and the log-probability are one
forward; sampling takes one pass per place. The plain masked stack has a blind spot (places above
and to the right beyond the kernel's reach go unseen); with a few layers on a 7x7 grid it is small,
and a gated two-stack PixelCNN would remove it at more code.
"""

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoder.config.validation import integer


class MaskedConv2d(nn.Conv2d):
    """A same-size conv whose kernel sees only the places before the centre in raster order: the
    rows above it and the places left of it in its row, and (`include_centre`) the centre itself.
    The first layer excludes the centre, which is the place predicted; later ones include it, since
    their input there already depends only on the places before it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, include_centre: bool):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[centre, centre + include_centre :] = 0
        mask[centre + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """The prior over grids (B, h, w) of indices in [0, `codebook_size`): each index embedded in
    `channels`, a first masked conv that excludes the centre, `layers` - 1 more that include it
    (residual, ReLU before each), and a 1x1 conv to K logits per place."""

    def __init__(
        self,
        codebook_size: Annotated[int, integer(2)],
        channels: Annotated[int, integer(1)] = 64,
        layers: Annotated[int, integer(1)] = 5,
        kernel_size: Annotated[int, integer(3)] = 3,
    ):
        super().__init__()
        self.codebook_size = codebook_size
        self.embedding = nn.Embedding(codebook_size, channels)
        self.first = MaskedConv2d(channels, channels, kernel_size, include_centre=False)
        self.rest = nn.ModuleList(MaskedConv2d(channels, channels, kernel_size, include_centre=True) for _ in range(layers - 1))
        self.logits_of = nn.Conv2d(channels, codebook_size, 1)

    def forward(self, indices: Tensor) -> Tensor:
        """The logits (B, K, h, w) of each place's index given the places before it."""
        h = self.first(self.embedding(indices).permute(0, 3, 1, 2))  # (B, h, w, C) -> (B, C, h, w)
        for layer in self.rest:
            h = h + layer(F.relu(h))
        return self.logits_of(F.relu(h))

    def log_prob(self, indices: Tensor) -> Tensor:
        """log p(grid) per grid (B,), in nats: the sum over places of log p(k_i | k_<i)."""
        log_p = F.log_softmax(self(indices).float(), dim=1)  # (B, K, h, w)
        return log_p.gather(1, indices[:, None]).flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int], generator: torch.Generator | None = None) -> Tensor:
        """n grids (n, h, w) of the given (h, w) shape, drawn place by place in raster order, on
        the CPU: the network runs on its device, the draws are made on the CPU with `generator` (a
        CPU one), so a seed gives the same grids wherever the network is."""
        device = self.logits_of.weight.device
        grids = torch.zeros(n, *shape, dtype=torch.long, device=device)
        for i in range(shape[0]):
            for j in range(shape[1]):
                probabilities = F.softmax(self(grids)[:, :, i, j].float(), dim=1).cpu()  # (n, K)
                grids[:, i, j] = torch.multinomial(probabilities, 1, generator=generator)[:, 0].to(device)
        return grids.cpu()
