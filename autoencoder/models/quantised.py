"""The VQ-VAE (van den Oord et al., 2017): a code grid whose vectors are each replaced by the nearest
of K learned codebook vectors, so that an image is coded by a (h, w) grid of K-way choices.

The network gives the grid (it is asked for one with `grid`: autoencoder.models.networks), flat as
every code is; the variant views it as (B, D, h, w), quantises it and hands the decoder the
quantised grid, flat again. Gradients pass the quantisation straight through; the codebook follows
the encoder by exponential moving averages (EMA) of the vectors assigned to each code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoder.config.validation import integer, number
from autoencoder.models.code_prior import PixelCNN
from autoencoder.models.variants import CodeTerms, Plain, reconstruction_loss
from autoencoder.utils.errors import UserError

if TYPE_CHECKING:
    from autoencoder.models.networks import Autoencoder


def nearest_codes(z: Tensor, codebook: Tensor) -> Tensor:
    """The index (N,) of the codebook vector (K, D) nearest to each vector of z (N, D), in
    Euclidean distance: argmin_k ||z||^2 - 2 z.e_k + ||e_k||^2 (||z||^2 is the same for every k)."""
    distances = codebook.pow(2).sum(1) - 2 * z @ codebook.T  # (N, K)
    return distances.argmin(1)


def perplexity(counts: Tensor) -> Tensor:
    """exp of the entropy of the use distribution counts / sum(counts) (K,): K when every code is
    used equally, 1 when one code takes all."""
    return torch.special.entr(counts / counts.sum()).sum().exp()


class VQVAE(Plain):
    """The VQ-VAE: the encoder's grid of `latent_dim`-vectors z (one per place of its last feature
    map) is quantised to q, each vector replaced by its nearest of `codebook_size` code vectors, and
    the decoder decodes q. The loss is the reconstruction plus `beta` x ||z - sg(q)||^2 (the
    commitment: the encoder keeps near the codes it chose), means over the grid's entries.

    The quantisation has no gradient, so it is passed straight through, z + sg(q - z): the decoder
    sees q and the encoder receives the gradient at q. The codebook is not trained by the codebook
    loss ||sg(z) - q||^2 but by EMA, as the paper's appendix suggests: each code is the decayed
    (`decay`) average of the encoder vectors assigned to it, which is k-means run online, stable,
    free of a learning rate of its own, and keeps the codebook out of the optimizer (buffers, in
    the checkpoint). A code whose EMA count (its decayed number of assignments per batch) falls
    below `dead_threshold` after an update is dead: it is restarted on a random encoder vector of
    the batch (torch's generator draws which). A new or restarted code's count is the threshold
    itself, so it lives on only if it wins vectors in its next batch, and a dead code keeps jumping
    to new vectors until it does: the first training step restarts every unused code on the data,
    and no code stays unused for long. Under DDP each process updates its own codebook from its
    batches, and DDP's buffer broadcast keeps the first process's.

    Codes are grids, flat (B, D*h*w) like every code: `code` is the quantised grid, `indices` the
    (B, h, w) code indices, `decode_indices` their images. It is no likelihood model (`generative`
    is False). Per batch it reports the fraction of codes used and the perplexity of their use
    (`statistics`), which the module logs but does not add to the loss.

    `prior` is a prior over the grids of indices (autoencoder.models.code_prior), trained after the
    VQ-VAE by the code_prior command, which writes its config into a new checkpoint's
    hyperparameters (Hydra builds it with the variant) and its weights beside the VQ-VAE's;
    `sample_prior` then draws codes from it. None (in training) leaves the VQ-VAE without one."""

    grid = True
    mixture_prior = False  # its codes are discrete, and many (D*h*w): a Gaussian mixture fits them poorly and slowly

    def __init__(
        self,
        latent_dim: Annotated[int, integer(1)],
        codebook_size: Annotated[int, integer(1)] = 512,
        beta: Annotated[float, number(0)] = 0.25,
        decay: Annotated[float, number(0, below=1)] = 0.99,
        dead_threshold: Annotated[float, number(above=0)] = 1.0,
        prior: PixelCNN | None = None,
    ):
        super().__init__()
        if codebook_size < 2:
            raise UserError(f"variant.codebook_size={codebook_size}: a codebook of 1 cannot code anything (every image gets the same code); use at least 2")
        self.beta, self.decay, self.dead_threshold = beta, decay, dead_threshold
        codebook = torch.randn(codebook_size, latent_dim)  # (K, D)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.full((codebook_size,), dead_threshold))  # (K,)
        self.register_buffer("ema_sum", codebook * dead_threshold)  # (K, D): count x code
        self._statistics: dict[str, Tensor] = {}
        self.prior = prior

    @property
    def has_prior(self) -> bool:
        return self.prior is not None

    def vectors(self, h: Tensor) -> Tensor:
        """The grid's vectors (B, L, D), L = h * w places, in fp32, from the flat codes (B, D*L)."""
        return h.float().view(len(h), self.codebook.shape[1], -1).transpose(1, 2)

    def quantise(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The indices (B, L) of the codes nearest to the vectors z (B, L, D), and those codes (B, L, D)."""
        index = nearest_codes(z.flatten(0, 1), self.codebook).view(z.shape[:2])
        return index, self.codebook[index]

    def code(self, h: Tensor) -> Tensor:
        _, q = self.quantise(self.vectors(h))
        return q.transpose(1, 2).flatten(1)  # (B, L, D) -> (B, D*L)

    def terms(
        self,
        net: Autoencoder,
        x: Tensor,
        target: Tensor,
        loss: str,
        generator: torch.Generator | None = None,
        progress: float | None = None,
        code_terms: CodeTerms | None = None,
    ) -> dict[str, Tensor]:
        z = self.vectors(net.encode(x))  # (B, L, D)
        index, q = self.quantise(z)
        counts = torch.bincount(index.flatten(), minlength=len(self.codebook)).float()  # (K,)
        self._statistics = {"codebook_use": (counts > 0).float().mean(), "perplexity": perplexity(counts)}
        if self.training:
            self.update(z.detach().flatten(0, 1), index.flatten(), counts)
        codes = (z + (q - z).detach()).transpose(1, 2).flatten(1)  # straight through; (B, D*L)
        return {
            "reconstruction": reconstruction_loss(net.decode(codes), target, loss),
            "commitment": self.beta * F.mse_loss(z, q),  # q is a buffer: sg(q)
            **(code_terms(codes) if code_terms else {}),
        }

    @torch.no_grad()
    def update(self, z: Tensor, index: Tensor, counts: Tensor) -> None:
        """One EMA step of the codebook towards the vectors z (N, D) assigned to it by `index`
        (N,), `counts` (K,) of them per code; then the dead codes restarted on random vectors of z."""
        sums = torch.zeros_like(self.ema_sum).index_add_(0, index, z)  # (K, D)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        dead = self.ema_count < self.dead_threshold  # (K,)
        alive = ~dead
        self.codebook[alive] = self.ema_sum[alive] / self.ema_count[alive, None]
        if dead.any():
            picks = z[torch.randint(len(z), (int(dead.sum()),), device=z.device)]  # (dead, D)
            self.codebook[dead], self.ema_sum[dead], self.ema_count[dead] = picks, picks * self.dead_threshold, self.dead_threshold

    def statistics(self) -> dict[str, Tensor]:
        return self._statistics

    def indices(self, net: Autoencoder, x: Tensor) -> Tensor:
        """The code indices (B, h, w) of images x (B, C, H, W)."""
        index, _ = self.quantise(self.vectors(net.encode(x)))
        return index.view(len(x), *net.code_shape[1:])

    def decode_indices(self, net: Autoencoder, indices: Tensor) -> Tensor:
        """The images (B, C, H, W) that grids of code indices (B, h, w) decode to."""
        q = self.codebook[indices]  # (B, h, w, D)
        return net.decode(q.permute(0, 3, 1, 2).flatten(1))  # (B, D, h, w) -> (B, D*h*w)

    def sample_prior(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, D*h*w), on the CPU: grids of indices drawn from the prior with `generator`
        (a CPU one), and their codebook vectors."""
        indices = self.prior.sample(n, net.code_shape[1:], generator)  # (n, h, w)
        return self.codebook.cpu()[indices].permute(0, 3, 1, 2).flatten(1)  # (n, h, w, D) -> (n, D*h*w)
