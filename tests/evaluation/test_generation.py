import numpy as np
import pytest
import scipy.linalg
import torch

from autoencoder.evaluation.generation import frechet_distance, precision_recall
from autoencoder.utils.errors import UserError


def with_moments(n: int, mean: torch.Tensor, covariance: torch.Tensor, seed: int) -> torch.Tensor:
    """n points (n, D) whose sample mean and (unbiased) covariance are exactly `mean` and `covariance`:
    random points, whitened by their own sample moments, then coloured."""
    x = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    whitened = x @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T  # sample covariance I
    return whitened @ torch.linalg.cholesky(covariance).T + mean


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    s1, s2 = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), torch.tensor([2.0, 1.0, 0.25], dtype=torch.float64)
    a, b = with_moments(50, mu1, torch.diag(s1), 0), with_moments(80, mu2, torch.diag(s2), 1)
    expected = (mu1 - mu2).square().sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum()
    assert frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-9)
    # Rotating both sets alike changes no distance: the non-diagonal case, against the same closed form.
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    assert frechet_distance(a @ rotation.T, b @ rotation.T) == pytest.approx(float(expected), rel=1e-9)


def test_frechet_distance_of_correlated_features_agrees_with_scipys_matrix_square_root():
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(300, 8, generator=generator, dtype=torch.float64) @ torch.randn(8, 8, generator=generator, dtype=torch.float64)
    b = torch.randn(300, 8, generator=generator, dtype=torch.float64) @ torch.randn(8, 8, generator=generator, dtype=torch.float64) + 1
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((a.mean(0) - b.mean(0)).numpy() ** 2) + np.trace(cov_a + cov_b - 2 * cross)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_a_set_to_itself_is_zero_and_float32_features_are_taken():
    a = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(a, a + 0.5) == pytest.approx(16 * 0.25, rel=1e-9)  # a shift moves the means only


def test_precision_and_recall_of_two_clusters():
    # Real: two far clusters of 10 points each. Fake: the first cluster's points, so every fake point
    # is a real one (precision 1) and exactly the first cluster of the real ones is covered (recall 0.5).
    cluster = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    real = torch.cat([cluster, cluster + 100])
    assert precision_recall(real, cluster, k=3) == (1.0, 0.5)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    assert precision_recall(real, cluster - 100, k=3) == (0.0, 0.0)  # far from both


def test_a_balls_radius_is_the_distance_to_the_kth_nearest_other_point():
    line = torch.arange(10.0)[:, None]  # 0, 1, ..., 9: the end points' 3rd nearest is 3 away
    near, far = torch.tensor([[12.0], [-3.0], [4.5], [-0.5]]), torch.tensor([[12.5], [-3.5], [4.5], [-0.5]])
    assert precision_recall(line, near, k=3)[0] == 1.0  # the edges 12 and -3 count as inside
    assert precision_recall(line, far, k=3)[0] == 0.5
    assert precision_recall(line, far, k=1)[0] == 0.5  # radius 1 everywhere: 4.5 and -0.5 inside


def test_large_sets_go_through_in_chunks():
    real = torch.randn(2500, 4, generator=torch.Generator().manual_seed(0))
    precision, recall = precision_recall(real, real.flip(0), k=5)
    assert precision == recall == 1.0
    assert 0 < frechet_distance(real, torch.randn(2000, 4, generator=torch.Generator().manual_seed(1))) < 0.05


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3)),
            r"the Fréchet distance needs at least 2 feature vectors \(N, D\) per set, got shape \(1, 3\)",
        ),
        (lambda: frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4)), "the Fréchet distance compares features of one size, got 3 and 4"),
        (
            lambda: precision_recall(torch.zeros(9, 2), torch.zeros(3, 2)),
            r"precision and recall with k=3 needs at least 4 feature vectors .* got shape \(3, 2\)",
        ),
        (lambda: precision_recall(torch.zeros(9, 2), torch.zeros(9, 2), k=0), "precision and recall need k >= 1 nearest neighbours, got 0"),
    ],
)
def test_too_few_samples_or_mismatched_sets_give_one_line(call, message):
    with pytest.raises(UserError, match=message) as error:
        call()
    assert "\n" not in str(error.value)
