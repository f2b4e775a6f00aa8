"""The priors p(z) of the VAE family: a setting of the variants that have one (conf/prior/).

A variant of the family (`Variational`, `IWAE`) holds its prior as a module, so a learned prior's
parameters train with the network and are saved in the checkpoint. The contract, on codes of
latent_dim d:

- `log_density(net, z)`: log p(z) per code (N,) of codes (N, d); the IWAE's bound and the
  likelihood's importance weights use it;
- `sample(net, n, generator)`: n codes (n, d) on the CPU, so that a CPU `generator` gives the same
  codes whatever device the network is on;
- `kl(net, mean, logvar, z)`: KL(q(z|x) || p(z)) per image (B,) for the posterior (mean, logvar),
  in closed form where there is one, else the estimate log q(z|x) - log p(z) at the posterior's
  sample z (unbiased: the KL is its expectation).

Each takes the network `net` (autoencoder.models.networks.Autoencoder): the VampPrior's components are
its posteriors, and N(0, I) samples need its latent_dim.

- `StandardNormal` (prior=standard, and the family's prior when none is chosen): N(0, I).
- `VampPrior` (prior=vamp): the mixture of the encoder's posteriors at learned pseudo-inputs.
- `MixturePrior` (prior=mixture): a learned mixture of diagonal Gaussians in code space.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import torch
from torch import Tensor, nn

from autoencoder.config.validation import integer, integers
from autoencoder.models.gaussians import (
    gaussian_log_density,
    kl_to_standard_normal,
    mixture_log_density,
    posterior,
    reparameterise,
    standard_normal_log_density,
)

if TYPE_CHECKING:  # networks -> sizes -> variants -> priors: a run-time import would be circular
    from autoencoder.models.networks import Autoencoder


class Prior(nn.Module):
    """p(z): its log-density, its samples and the KL of a posterior to it. Without a closed form,
    the KL is the one-sample estimate; a prior with one overrides `kl`."""

    def log_density(self, net: Autoencoder, z: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def kl(self, net: Autoencoder, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        return gaussian_log_density(z, mean, logvar) - self.log_density(net, z)

    @contextmanager
    def fixed(self, net: Autoencoder) -> Iterator[None]:
        """While the network and the prior stay as they are (an evaluation pass), a prior that
        depends on the network may work that part out once instead of at every call."""
        yield


class StandardNormal(Prior):
    """N(0, I), the VAE's (Kingma & Welling, 2014): nothing to learn, and a closed-form KL."""

    def log_density(self, net: Autoencoder, z: Tensor) -> Tensor:
        return standard_normal_log_density(z)

    def sample(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, net.latent_dim, generator=generator)

    def kl(self, net: Autoencoder, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        return kl_to_standard_normal(mean, logvar)  # z unused


class VampPrior(Prior):
    """The VampPrior (Tomczak & Welling, 2018): the mixture of the encoder's own posteriors at K =
    `pseudo_inputs` learned images u_k, p(z) = (1/K) sum_k q(z|u_k). The prior the encoder can
    reach is the one that fits its posteriors best (the aggregate posterior, for K = the training
    set); K << N keeps it cheap and regular. Each use encodes the K pseudo-inputs (once per pass
    within `fixed`).

    They are images of `input_shape` (the network's, which the YAML links), held as logits so that
    sigmoid(logits) stays in (0, 1) like the data, with a smooth gradient where a clip (the paper's
    hardtanh) has none; they start as uniform noise."""

    def __init__(self, input_shape: Annotated[Sequence[int], integers(1, length=3)], pseudo_inputs: Annotated[int, integer(1)] = 500):
        super().__init__()
        uniform = torch.rand(pseudo_inputs, *input_shape).clamp(1e-3, 1 - 1e-3)
        self.logits = nn.Parameter(torch.logit(uniform))  # (K, C, H, W)
        self._fixed: tuple[Tensor, Tensor] | None = None  # the components, within `fixed`

    @contextmanager
    def fixed(self, net: Autoencoder) -> Iterator[None]:
        """The pseudo-inputs encoded once for the whole pass: a likelihood pass that decodes a
        hundred samples per call would otherwise encode the K pseudo-inputs at each one."""
        with torch.no_grad():
            self._fixed = self.components(net)
        try:
            yield
        finally:
            self._fixed = None

    def components(self, net: Autoencoder) -> tuple[Tensor, Tensor]:
        """The means and log-variances (K, latent_dim) each of q(z|u_k). The network encodes the
        pseudo-inputs as at evaluation (BatchNorm on its running statistics): they are not data, so
        they must not move the statistics the data are normalised with, and this is the prior that
        sampling and the likelihood (in eval mode) use."""
        if self._fixed is not None:
            return self._fixed
        training = net.training
        net.eval()
        try:
            return posterior(net.encode(torch.sigmoid(self.logits)))
        finally:
            net.train(training)

    def log_density(self, net: Autoencoder, z: Tensor) -> Tensor:
        means, logvars = self.components(net)  # (K, d) each
        return mixture_log_density(z, torch.full((len(means),), -math.log(len(means)), device=means.device), means, logvars)

    def sample(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """A component drawn uniformly per code, then a code from it."""
        means, logvars = (t.detach().cpu() for t in self.components(net))  # (K, d) each
        k = torch.randint(len(means), (n,), generator=generator)  # (n,)
        return reparameterise(means[k], logvars[k], generator)


class MixturePrior(Prior):
    """A learned mixture of K = `components` diagonal Gaussians in code space of `latent_dim` (the
    network's, which the YAML links), p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)): its means,
    log-variances and mixing logits are parameters, trained with the network. Unlike the
    VampPrior, it is free of the encoder and costs no encoding, so it suits any K; the KL is the
    one-sample estimate all the same (a mixture has no closed form).

    It starts with equal weights, variances 1/2 and means drawn from N(0, I/2): the components differ
    (the symmetry between them is broken) and the mixture's covariance is I on average over the
    draws, as N(0, I)'s."""

    def __init__(self, latent_dim: Annotated[int, integer(1)], components: Annotated[int, integer(1)] = 10):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, latent_dim) * math.sqrt(0.5))  # (K, d)
        self.logvars = nn.Parameter(torch.full((components, latent_dim), math.log(0.5)))  # (K, d)
        self.logits = nn.Parameter(torch.zeros(components))  # (K,)

    def parts(self) -> tuple[Tensor, Tensor, Tensor]:
        """The log-weights (K,), means and log-variances (K, d), the latter kept where exp() is finite."""
        return self.logits.log_softmax(0), self.means, self.logvars.clamp(-30, 20)

    def log_density(self, net: Autoencoder, z: Tensor) -> Tensor:
        return mixture_log_density(z, *self.parts())

    def sample(self, net: Autoencoder, n: int, generator: torch.Generator | None = None) -> Tensor:
        """A component drawn by its weight per code, then a code from it."""
        log_weights, means, logvars = (t.detach().cpu() for t in self.parts())
        k = torch.multinomial(log_weights.exp(), n, replacement=True, generator=generator)  # (n,)
        return reparameterise(means[k], logvars[k], generator)
