"""How close generated images are to real ones, measured on their features (a classifier's, say).

- `frechet_distance`: the Fréchet distance between Gaussians fitted to the two feature sets (FID's
  formula, Heusel et al. 2017). One number for both fidelity and diversity: a model that draws only
  good images of a few kinds and one that draws all kinds badly can score alike.
- `precision_recall`: the two apart (Kynkäänniemi et al. 2019). Each set's manifold is the union of
  balls around its points, each as wide as the distance to its k-th nearest neighbour in the set;
  precision is the share of generated points inside the real manifold (are the samples realistic?),
  recall the share of real points inside the generated one (is all of the data covered?).

Both take features (N, D) and compute in float64: the matrix square root of the Fréchet distance
loses digits in float32 where the two covariances are close, which is when the number matters.
"""

import torch
from torch import Tensor

from autoencoder.utils.errors import UserError

CHUNK = 1024  # rows of a distance matrix at a time: memory O(CHUNK x N), not N x N


def _pair(a: Tensor, b: Tensor, least: int, what: str) -> tuple[Tensor, Tensor]:
    """Both feature sets in float64, each (N, D) with at least `least` rows and the same D."""
    for x in (a, b):
        if x.ndim != 2 or len(x) < least:
            raise UserError(f"{what} needs at least {least} feature vectors (N, D) per set, got shape {tuple(x.shape)}")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"{what} compares features of one size, got {a.shape[1]} and {b.shape[1]}")
    return a.detach().to(torch.float64), b.detach().to(torch.float64)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix; rounding's small
    negative eigenvalues are taken as 0."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) for features a (N, D) and b (M, D), with
    their means and (unbiased) covariances. tr (S_a S_b)^1/2 is taken as tr (S_a^1/2 S_b S_a^1/2)^1/2,
    the same trace of a symmetric matrix, so eigh serves and no complex parts appear."""
    a, b = _pair(a, b, 2, "the Fréchet distance")
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (D, D) each
    root_a = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def _radii(points: Tensor, k: int) -> Tensor:
    """The distance of each point (N, D) to its k-th nearest other point: (N,)."""
    return torch.cat([torch.cdist(chunk, points).kthvalue(k + 1, dim=1).values for chunk in points.split(CHUNK)])  # k + 1: itself at 0


def _inside(queries: Tensor, points: Tensor, radii: Tensor) -> Tensor:
    """Whether each query (Q, D) lies in some ball around `points` (N, D) of its radius (N,): (Q,)."""
    return torch.cat([(torch.cdist(chunk, points) <= radii).any(1) for chunk in queries.split(CHUNK)])


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of generated features `fake` (M, D) against `real` (N, D), each
    set's manifold made of k-nearest-neighbour balls (a ball's edge counts as inside)."""
    if k < 1:
        raise UserError(f"precision and recall need k >= 1 nearest neighbours, got {k}")
    real, fake = _pair(real, fake, k + 1, f"precision and recall with k={k}")
    precision = _inside(fake, real, _radii(real, k)).double().mean()
    recall = _inside(real, fake, _radii(fake, k)).double().mean()
    return float(precision), float(recall)
