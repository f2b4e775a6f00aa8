import pytest
import torch

from autoencoder.evaluation.mixture import GaussianMixture
from autoencoder.utils.errors import UserError

WEIGHTS, MEANS = torch.tensor([0.3, 0.7]), torch.tensor([[-6.0, 0.0], [6.0, 2.0]])
COVARIANCES = torch.tensor([[[1.0, 0.8], [0.8, 1.0]], [[0.25, 0.0], [0.0, 4.0]]])


def two_gaussians(n: int, seed: int) -> torch.Tensor:
    """n codes (n, 2) from two well-separated Gaussians, 30% and 70% of them."""
    generator = torch.Generator().manual_seed(seed)
    which = torch.multinomial(WEIGHTS, n, replacement=True, generator=generator)
    eps = torch.randn(n, 2, generator=generator)
    return MEANS[which] + (torch.linalg.cholesky(COVARIANCES)[which] @ eps[:, :, None]).squeeze(2)


def test_the_mixtures_draws_follow_the_gaussians_its_codes_came_from():
    codes = two_gaussians(4000, seed=0)
    mixture = GaussianMixture.fit(codes, components=2, seed=0)
    draws = mixture.sample(20000, torch.Generator().manual_seed(1))
    assert draws.shape == (20000, 2)
    right = draws[:, 0] > 0  # the two are 12 apart along the first axis
    assert right.float().mean().item() == pytest.approx(0.7, abs=0.02)
    for side, k in ((~right, 0), (right, 1)):
        torch.testing.assert_close(draws[side].mean(0), MEANS[k], atol=0.1, rtol=0)
        torch.testing.assert_close(torch.cov(draws[side].T), COVARIANCES[k], atol=0.15, rtol=0)


def test_a_diagonal_mixture_draws_uncorrelated_codes_and_a_seed_repeats_them():
    codes = two_gaussians(4000, seed=0)
    mixture = GaussianMixture.fit(codes, components=2, covariance="diag", seed=0)
    assert torch.equal(mixture.scale_tril, torch.diag_embed(torch.diagonal(mixture.scale_tril, dim1=1, dim2=2)))
    first, again, other = (mixture.sample(500, torch.Generator().manual_seed(seed)) for seed in (3, 3, 4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_more_components_than_codes_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"^components=5 needs at least as many codes to fit them to, and there are 4$"):
        GaussianMixture.fit(torch.randn(4, 2), components=5)
