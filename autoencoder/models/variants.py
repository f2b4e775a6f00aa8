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
- `Vamp` (variant=vamp): the VAE with a VampPrior, a mixture of its posteriors at learned pseudo-inputs.

The VQ-VAE (variant=vqvae), whose codes are grids of codebook choices, is autoencoder.models.quantised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoder.config.validation import integer, integers, number

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
    generative = False  # whether it is a likelihood model: a prior p(z) and p(x|z), so an ELBO
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


def reparameterise(mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mean + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that gradients flow through."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row, in nats: 0.5 sum(mean^2 + var - logvar - 1)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1)


def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) per row."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)


def gaussian_log_density(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mean, exp(logvar)) per row (diagonal covariance): a sum over the last dimension, so
    the three broadcast (codes (N, 1, d) against K Gaussians (K, d) give (N, K))."""
    return -0.5 * ((z - mean).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


class Variational(Plain):
    """The VAE (Kingma & Welling, 2014): the encoder gives the mean and log-variance of a diagonal
    Gaussian q(z|x), a sample z = mean + sigma * eps is decoded, and the loss is the negative ELBO
    -E_q log p(x|z) + beta KL(q(z|x) || N(0, I)), in nats per image (a sum over pixels).

    p(x|z) is Bernoulli with the decoder's output as its means for loss=bce, and Gaussian with that
    mean and the fixed standard deviation `sigma` for loss=mse. beta != 1 is the beta-VAE; with
    `warmup_epochs` the KL weight rises linearly from 0 to beta over that many training epochs
    (validation and test always weigh it by beta, so their losses compare across epochs). The
    codes used for features are the posterior means."""

    heads = 2
    generative = True
    unit = " nats"  # the negative ELBO per image

    def __init__(self, beta: Annotated[float, number(0)] = 1.0, warmup_epochs: Annotated[float, number(0)] = 0, sigma: Annotated[float, number(above=0)] = 0.1):
        super().__init__()
        self.beta, self.warmup_epochs, self.sigma = beta, warmup_epochs, sigma

    def posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The mean and log-variance (B, latent_dim) each, in fp32, from the encoder's (B, 2 latent_dim)."""
        mean, logvar = h.float().chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)  # exp() of it stays finite

    def code(self, h: Tensor) -> Tensor:
        return self.posterior(h)[0]

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
        mean, logvar = self.posterior(net.encode(x))
        z = reparameterise(mean, logvar, generator)
        reconstruction = -self.log_likelihood(net.decode(z), target, loss).mean()
        kl = self.kl_weight(progress) * self.kl(net, mean, logvar, z).mean()
        return {"reconstruction": reconstruction, "kl": kl, **_on_codes(code_terms, mean)}

    def kl(self, net: Autoencoder, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) per image (B,) for the posterior (mean, logvar) and its sample z: in
        closed form for the prior N(0, I) (z unused)."""
        return kl_to_standard_normal(mean, logvar)

    def prior_log_density(self, net: Autoencoder, z: Tensor) -> Tensor:
        """log p(z) per code (N,) of codes z (N, latent_dim)."""
        return standard_normal_log_density(z)

    def negative_elbo(self, net: Autoencoder, x: Tensor, loss: str, generator: torch.Generator | None = None) -> Tensor:
        """-ELBO per image (B,) with one posterior sample and the prior's KL (beta = 1): a bound on
        -log p(x), and the VAE's anomaly score."""
        mean, logvar = self.posterior(net.encode(x))
        z = reparameterise(mean, logvar, generator)
        return -self.log_likelihood(net.decode(z), x, loss) + self.kl(net, mean, logvar, z)

    def log_weights(self, net: Autoencoder, x: Tensor, samples: int, loss: str, generator: torch.Generator | None = None) -> Tensor:
        """log p(x, z_k) - log q(z_k|x) for `samples` draws z_k ~ q(z|x): (B, samples). Their
        log-mean-exp is the importance-weighted bound on log p(x) (Burda et al., 2016)."""
        return self.weights_of(net, *self.posterior(net.encode(x)), x, samples, loss, generator)

    def weights_of(
        self, net: Autoencoder, mean: Tensor, logvar: Tensor, target: Tensor, samples: int, loss: str, generator: torch.Generator | None = None
    ) -> Tensor:
        """`log_weights` for the posterior (mean, logvar) of an input (corrupted or not) and the
        image `target` whose likelihood is weighed: (B, samples)."""
        b = len(mean)
        mean, logvar = (t.repeat_interleave(samples, dim=0) for t in (mean, logvar))  # (B * samples, d)
        z = reparameterise(mean, logvar, generator)
        images = target.repeat_interleave(samples, dim=0)
        log_p = self.log_likelihood(net.decode(z), images, loss) + self.prior_log_density(net, z)
        return (log_p - gaussian_log_density(z, mean, logvar)).view(b, samples)

    def sample_prior(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, latent_dim) drawn from the prior N(0, I), on the CPU: `generator` (a CPU one)
        then gives the same codes whatever device the network is on."""
        return torch.randn(n, net.latent_dim, generator=generator)


class IWAE(Variational):
    """The IWAE (Burda et al., 2016): a VAE trained on the importance-weighted bound
    log (1/k) sum_i p(x, z_i) / q(z_i|x) with k = `samples` draws z_i ~ q(z|x), in nats per image.

    The bound tightens towards log p(x) as k grows (on average over the draws), so it asks less of
    q(z|x) fitting the true posterior: Burda et al. found more active latent units and a better
    log-likelihood than the VAE's. k = 1 is the VAE's ELBO (beta = 1) with its KL estimated from the sample rather than in closed
    form: the same in expectation. A step decodes k samples per image, so it costs about k x a VAE's
    decoder. There is no beta or warm-up: a weighted KL is no part of this bound."""

    def __init__(self, samples: Annotated[int, integer(1)] = 5, sigma: Annotated[float, number(above=0)] = 0.1):
        super().__init__(sigma=sigma)
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
        mean, logvar = self.posterior(net.encode(x))
        log_weights = self.weights_of(net, mean, logvar, target, self.samples, loss, generator)  # (B, k), fp32
        bound = log_weights.logsumexp(1) - math.log(self.samples)  # (B,)
        return {"bound": -bound.mean(), **_on_codes(code_terms, mean)}


class Vamp(Variational):
    """The VAE with a VampPrior (Tomczak & Welling, 2018): the prior is the mixture of the
    encoder's own posteriors at K = `pseudo_inputs` learned images u_k, p(z) = (1/K) sum_k q(z|u_k),
    rather than N(0, I). The prior the encoder can reach is the one that fits its posteriors
    best (the aggregate posterior, for K = the training set); K << N keeps it cheap and regular.

    The KL of a mixture has no closed form, so it is estimated from the posterior sample z, as
    log q(z|x) - log p(z): unbiased, as the IWAE's is. Each step also encodes the K pseudo-inputs.
    They are images of `input_shape` (the network's, which the YAML links), held as logits so that
    sigmoid(logits) stays in (0, 1) like the data, with a smooth gradient where a clip (the paper's
    hardtanh) has none; they start as uniform noise. Everything else (beta, warm-up, sigma, the
    codes) is the VAE's."""

    def __init__(
        self,
        input_shape: Annotated[Sequence[int], integers(1, length=3)],
        pseudo_inputs: Annotated[int, integer(1)] = 500,
        **settings,
    ):
        super().__init__(**settings)
        uniform = torch.rand(pseudo_inputs, *input_shape).clamp(1e-3, 1 - 1e-3)
        self.logits = nn.Parameter(torch.logit(uniform))  # (K, C, H, W)

    def components(self, net: Autoencoder) -> tuple[Tensor, Tensor]:
        """The means and log-variances (K, latent_dim) each of q(z|u_k). The network encodes the
        pseudo-inputs as at evaluation (BatchNorm on its running statistics): they are not data, so
        they must not move the statistics the data are normalised with, and this is the prior that
        sampling and the likelihood (in eval mode) use."""
        training = net.training
        net.eval()
        try:
            return self.posterior(net.encode(torch.sigmoid(self.logits)))
        finally:
            net.train(training)

    def kl(self, net: Autoencoder, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        return gaussian_log_density(z, mean, logvar) - self.prior_log_density(net, z)

    def prior_log_density(self, net: Autoencoder, z: Tensor) -> Tensor:
        """log (1/K) sum_k N(z; mean_k, var_k) per code (N,), by a log-sum-exp over the components,
        a thousand codes at a time: (1000, K, latent_dim) at most, whatever N is."""
        means, logvars = self.components(net)  # (K, d) each
        log_k = math.log(len(means))
        return torch.cat([gaussian_log_density(chunk[:, None], means, logvars).logsumexp(1) - log_k for chunk in z.float().split(1000)])

    def sample_prior(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, latent_dim), on the CPU: a component drawn uniformly per code, then a code from it."""
        means, logvars = (t.cpu() for t in self.components(net))  # (K, d) each
        k = torch.randint(len(means), (n,), generator=generator)  # (n,)
        return reparameterise(means[k], logvars[k], generator)
