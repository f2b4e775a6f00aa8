"""An ex-post density on the codes: a Gaussian mixture fitted to a trained autoencoder's codes.

A plain, sparse or contractive autoencoder has no prior, so nothing tells it which codes decode to
images like the data. Fitting a density to the training codes after training gives it one (as the
regularised autoencoders of Ghosh et al. 2020 do): codes drawn from it decode to samples. It
applies to a VAE's codes (its posterior means) too, whose aggregate posterior can be far from N(0, I).

The fit is scikit-learn's `GaussianMixture` (EM from a k-means start, with a small ridge on the
covariances, so that a dead code unit does not make them singular): a well-tested fit that needs no
code of ours, on codes that are on the CPU anyway. The draws are ours, in torch, so that a
`torch.Generator` seeds them as it seeds every other draw of a command.
"""

from dataclasses import dataclass

import torch
from sklearn.mixture import GaussianMixture as Fit
from torch import Tensor

from autoencoder.utils.errors import UserError

COVARIANCES = ("full", "diag")


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k weights_k N(means_k, L_k L_k^T): weights (K,), means (K, d), and the covariances'
    lower Cholesky factors L (K, d, d), diagonal ones for `diag`."""

    weights: Tensor
    means: Tensor
    scale_tril: Tensor

    @classmethod
    def fit(cls, codes: Tensor, components: int = 10, covariance: str = "full", seed: int = 0) -> "GaussianMixture":
        """The mixture of `components` Gaussians with `covariance` (full or diag) fitted to codes
        (N, d) by EM, from a k-means start seeded by `seed`."""
        if len(codes) < components:
            raise UserError(f"components={components} needs at least as many codes to fit them to, and there are {len(codes)}")
        fit = Fit(components, covariance_type=covariance, random_state=seed).fit(codes.double().numpy())
        covariances = torch.from_numpy(fit.covariances_)  # (K, d, d) full, (K, d) diag
        scale_tril = torch.linalg.cholesky(covariances) if covariance == "full" else torch.diag_embed(covariances.sqrt())
        return cls(torch.from_numpy(fit.weights_).float(), torch.from_numpy(fit.means_).float(), scale_tril.float())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, d): a component per code, drawn by its weight, then a code from it."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.means.shape[1], generator=generator)  # (n, d)
        return self.means[k] + (self.scale_tril[k] @ eps[:, :, None]).squeeze(2)  # (n, d, d) @ (n, d, 1) -> (n, d)
