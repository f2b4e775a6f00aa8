"""Diagonal Gaussians in code space: what the VAE family (autoencoder.models.variants) and its
priors (autoencoder.models.priors) compute with.

A posterior q(z|x) is the encoder's output read as a mean and a log-variance; a prior is N(0, I) or a
mixture of diagonal Gaussians. All densities are per row, in nats, in fp32.
"""

import math

import torch
from torch import Tensor


def posterior(h: Tensor) -> tuple[Tensor, Tensor]:
    """The mean and log-variance (B, latent_dim) each, in fp32, from an encoder's (B, 2 latent_dim)."""
    mean, logvar = h.float().chunk(2, dim=1)
    return mean, logvar.clamp(-30, 20)  # exp() of it stays finite


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


def mixture_log_density(z: Tensor, log_weights: Tensor, means: Tensor, logvars: Tensor) -> Tensor:
    """log sum_k weights_k N(z; means_k, exp(logvars_k)) per code (N,) of codes z (N, d), for K
    components (log_weights (K,), means and logvars (K, d)): a log-sum-exp over the components, a
    thousand codes at a time, so at most (1000, K, d) whatever N is."""
    chunks = z.float().split(1000)
    return torch.cat([(gaussian_log_density(chunk[:, None], means, logvars) + log_weights).logsumexp(1) for chunk in chunks])
