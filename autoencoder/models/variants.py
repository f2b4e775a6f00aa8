"""Autoencoder variants: what training asks of an architecture's encoder and decoder.

A variant (conf/variant/) turns the encoder's output into codes and says what training minimises;
the architecture (conf/model/) only says how images become vectors and back. So every variant runs
on every architecture and corruption: the module hands the variant the network, the (corrupted)
input and the clean target, and sums the terms it returns.

- `Plain` (variant=ae): the reconstruction loss alone, per pixel, as `loss` (mse or bce) says.
- `Sparse` (variant=sparse): plus an L1 penalty on the codes.
- `Contractive` (variant=contractive): plus the squared Frobenius norm of the encoder's Jacobian.
- `Variational` (variant=vae): the encoder gives a Gaussian q(z|x); the loss is the negative ELBO
  in nats per image, with the KL term weighted by beta.
- `IWAE` (variant=iwae): the VAE trained on the k-sample importance-weighted bound.

The last two are the VAE family: each holds a prior p(z) (autoencoder.models.priors; conf/prior/),
N(0, I) unless another is chosen. The VQ-VAE (variant=vqvae), whose codes are grids of codebook
choices, is autoencoder.models.quantised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoder.config.validation import integer, number
from autoencoder.models.gaussians import gaussian_log_density, posterior, reparameterise
from autoencoder.models.priors import Prior, StandardNormal

if TYPE_CHECKING:  # networks -> sizes -> variants: a run-time import would be circular
    from autoencoder.models.networks import Autoencoder

PER_PIXEL = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}
CodeTerms = Callable[[Tensor], dict[str, Tensor]]  # loss terms on the codes (B, latent_dim)


def _on_codes(code_terms: CodeTerms | None, z: Tensor) -> dict[str, Tensor]:
    return code_terms(z) if code_terms else {}


def reconstruction_loss(reconstruction: Tensor, target: Tensor, loss: str) -> Tensor:
    """The mean per-pixel `loss`, in fp32 whatever the autocast precision (BCE is unsafe under it)."""
    with torch.autocast(reconstruction.device.type, enabled=False):
        return PER_PIXEL[loss](reconstruction.float(), target.float())


class Plain(nn.Module):
    """The (denoising) autoencoder: minimise the reconstruction loss of g(h(r(x))) against x.

    The contract for every variant: `heads` is how many vectors of latent_dim the encoder must
    give, and `grid` whether as a grid over a feature map rather than one flat code (the module
    builds the network so); `code` maps the encoder's output to the codes that features, figures
    and interpolation use; `terms` returns the named parts of the loss, and `statistics` what the
    last `terms` saw besides, to be logged but not minimised."""

    heads = 1
    grid = False
    generative = False  # whether it is a likelihood model: a prior p(z) (autoencoder.models.priors) and p(x|z), so an ELBO
    mixture_prior = True  # whether a Gaussian mixture fitted to its codes stands in for a prior it lacks
    double_backward = False  # whether its loss differentiates a gradient (torch.compile cannot)
    unit = ""  # of its loss, for the console: a mean squared error or cross-entropy has none

    @property
    def has_prior(self) -> bool:
        """Whether `sample_prior` draws codes: a likelihood model's prior, or a learned one."""
        return self.generative

    def code(self, h: Tensor) -> Tensor:
        return h

    def statistics(self) -> dict[str, Tensor]:
        """Figures of the batch of the last `terms` call that are no part of the loss (a codebook's
        use): the module logs each as `<stage>/<name>` and adds none to the loss."""
        return {}

    def penalties(self, x: Tensor, z: Tensor) -> dict[str, Tensor]:
        """Terms on the input `x` and its codes `z`, added to the reconstruction loss."""
        return {}

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
        """The loss parts for input `x` (corrupted or not) and the clean `target`. `generator`
        seeds any sampling (validation passes one); `progress` is the training epoch as a float
        (None outside training); `code_terms` are the module's own terms on the codes of `x` (its
        transformation head's)."""
        z = self.code(net.encode(x))
        return {"reconstruction": reconstruction_loss(net.decode(z), target, loss), **self.penalties(x, z), **_on_codes(code_terms, z)}


class Sparse(Plain):
    """An L1 penalty `weight` x mean |z| on the codes: few active units per image (a Laplace prior
    on the codes). We chose L1 over a KL sparsity target because it needs no sigmoid codes and no
    target rate, so it applies to every architecture's linear code unchanged."""

    def __init__(self, weight: Annotated[float, number(0)] = 1e-3):
        super().__init__()
        self.weight = weight

    def penalties(self, x: Tensor, z: Tensor) -> dict[str, Tensor]:
        return {"sparsity": self.weight * z.float().abs().mean()}


def jacobian_norm_estimate(z: Tensor, x: Tensor, projections: int = 1) -> Tensor:
    """An unbiased estimate of the batch mean of ||dz/dx||_F^2, differentiable (Hutchinson's).

    For v with independent +-1 entries, E ||J^T v||^2 = trace(J J^T) = ||J||_F^2, and J^T v is one
    vector-Jacobian product: the cost of one more backward pass through the encoder per projection,
    whatever the code's size. It is exact when J's rows are orthogonal. Each image draws its own v,
    so the coupling BatchNorm adds between the images of a batch only adds terms of order 1/B."""
    total = z.new_zeros((), dtype=torch.float32)
    for _ in range(projections):
        v = torch.randint(0, 2, z.shape, device=z.device).to(z.dtype) * 2 - 1
        (jtv,) = torch.autograd.grad(z, x, v, create_graph=True)  # (B, C, H, W)
        total = total + jtv.float().pow(2).flatten(1).sum(1).mean()
    return total / projections


class Contractive(Plain):
    """A penalty `weight` x ||dz/dx||_F^2 on the encoder's Jacobian at the input (Rifai et al.,
    2011), for the whole encoder, estimated with `projections` random projections. It is computed in
    training only: Lightning turns gradients off for validation and test, whose loss is then the
    reconstruction alone. It needs a double backward, which torch.compile does not support."""

    double_backward = True

    def __init__(self, weight: Annotated[float, number(0)] = 1e-4, projections: Annotated[int, integer(1)] = 1):
        super().__init__()
        self.weight, self.projections = weight, projections

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
        if torch.is_grad_enabled():
            x = x.detach().requires_grad_(True)
        return super().terms(net, x, target, loss, generator, progress, code_terms)

    def penalties(self, x: Tensor, z: Tensor) -> dict[str, Tensor]:
        if not x.requires_grad:
            return {}
        return {"contractive": self.weight * jacobian_norm_estimate(z, x, self.projections)}


class Variational(Plain):
    """The VAE (Kingma & Welling, 2014): the encoder gives the mean and log-variance of a diagonal
    Gaussian q(z|x), a sample z = mean + sigma * eps is decoded, and the loss is the negative ELBO
    -E_q log p(x|z) + beta KL(q(z|x) || p(z)), in nats per image (a sum over pixels).

    p(x|z) is Bernoulli with the decoder's output as its means for loss=bce, and Gaussian with that
    mean and the fixed standard deviation `sigma` for loss=mse. beta != 1 is the beta-VAE; with
    `warmup_epochs` the KL weight rises linearly from 0 to beta over that many training epochs
    (validation and test always weigh it by beta, so their losses compare across epochs). The
    codes used for features are the posterior means. The prior p(z) is `prior` (None: N(0, I)); a
    learned one is this module's child, so it trains with the network and is in the checkpoint."""

    heads = 2
    generative = True
    unit = " nats"  # the negative ELBO per image

    def __init__(
        self,
        beta: Annotated[float, number(0)] = 1.0,
        warmup_epochs: Annotated[float, number(0)] = 0,
        sigma: Annotated[float, number(above=0)] = 0.1,
        prior: Prior | None = None,
    ):
        super().__init__()
        self.beta, self.warmup_epochs, self.sigma = beta, warmup_epochs, sigma
        self.prior = prior if prior is not None else StandardNormal()

    def code(self, h: Tensor) -> Tensor:
        return posterior(h)[0]

    def log_likelihood(self, reconstruction: Tensor, target: Tensor, loss: str) -> Tensor:
        """log p(x|z) per image (B,), with `reconstruction` the decoder's output for z."""
        with torch.autocast(reconstruction.device.type, enabled=False):
            mean, target = reconstruction.float().flatten(1), target.float().flatten(1)
            if loss == "bce":
                return -F.binary_cross_entropy(mean, target, reduction="none").sum(1)
            return -0.5 * (((target - mean) / self.sigma).pow(2) + math.log(2 * math.pi * self.sigma**2)).sum(1)

    def kl_weight(self, progress: float | None) -> float:
        if progress is None or not self.warmup_epochs:
            return self.beta
        return self.beta * min(1.0, progress / self.warmup_epochs)

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
        mean, logvar = posterior(net.encode(x))
        z = reparameterise(mean, logvar, generator)
        reconstruction = -self.log_likelihood(net.decode(z), target, loss).mean()
        kl = self.kl_weight(progress) * self.prior.kl(net, mean, logvar, z).mean()
        return {"reconstruction": reconstruction, "kl": kl, **_on_codes(code_terms, mean)}

    def negative_elbo(self, net: Autoencoder, x: Tensor, loss: str, generator: torch.Generator | None = None) -> Tensor:
        """-ELBO per image (B,) with one posterior sample and the prior's KL (beta = 1): a bound on
        -log p(x), and the VAE's anomaly score."""
        mean, logvar = posterior(net.encode(x))
        z = reparameterise(mean, logvar, generator)
        return -self.log_likelihood(net.decode(z), x, loss) + self.prior.kl(net, mean, logvar, z)

    def weights_of(
        self, net: Autoencoder, mean: Tensor, logvar: Tensor, target: Tensor, samples: int, loss: str, generator: torch.Generator | None = None
    ) -> Tensor:
        """log p(x, z_k) - log q(z_k|x) (B, samples) for `samples` draws z_k ~ q(z|x), the posterior
        (mean, logvar) of an input (corrupted or not), x the image `target` whose likelihood is
        weighed. Their log-mean-exp is the importance-weighted bound on log p(x) (Burda et al.,
        2016); the caller encodes once, however many chunks of samples it asks for."""
        b = len(mean)
        mean, logvar = (t.repeat_interleave(samples, dim=0) for t in (mean, logvar))  # (B * samples, d)
        z = reparameterise(mean, logvar, generator)
        images = target.repeat_interleave(samples, dim=0)
        log_p = self.log_likelihood(net.decode(z), images, loss) + self.prior.log_density(net, z)
        return (log_p - gaussian_log_density(z, mean, logvar)).view(b, samples)

    def sample_prior(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, latent_dim) drawn from the prior, on the CPU (the sampling contract every
        variant with a prior keeps; the VQ-VAE's draws grids of its codebook's vectors)."""
        return self.prior.sample(net, n, generator)


class IWAE(Variational):
    """The IWAE (Burda et al., 2016): a VAE trained on the importance-weighted bound
    log (1/k) sum_i p(x, z_i) / q(z_i|x) with k = `samples` draws z_i ~ q(z|x), in nats per image.

    The bound tightens towards log p(x) as k grows (on average over the draws), so it asks less of
    q(z|x) fitting the true posterior: Burda et al. found more active latent units and a better
    log-likelihood than the VAE's. k = 1 is the VAE's ELBO (beta = 1) with its KL estimated from the sample rather than in closed
    form: the same in expectation. A step decodes k samples per image, so it costs about k x a VAE's
    decoder. There is no beta or warm-up: a weighted KL is no part of this bound. Its p(z) is the
    `prior`'s log-density, whichever prior that is."""

    def __init__(self, samples: Annotated[int, integer(1)] = 5, sigma: Annotated[float, number(above=0)] = 0.1, prior: Prior | None = None):
        super().__init__(sigma=sigma, prior=prior)
        self.samples = samples

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
        mean, logvar = posterior(net.encode(x))
        log_weights = self.weights_of(net, mean, logvar, target, self.samples, loss, generator)  # (B, k), fp32
        bound = log_weights.logsumexp(1) - math.log(self.samples)  # (B,)
        return {"bound": -bound.mean(), **_on_codes(code_terms, mean)}
