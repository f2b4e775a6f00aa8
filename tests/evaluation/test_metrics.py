import math

import numpy as np
import pytest
import torch

from autoencoder.evaluation.metrics import auroc, knn_accuracy, knn_distance, linear_probe_accuracy, per_image_mse, psnr, relative_error, ssim


def test_psnr_of_a_known_mse():
    clean = torch.zeros(3, 1, 4, 4)
    noisy = clean + torch.tensor([0.1, 0.01, 0.5]).view(3, 1, 1, 1)  # MSE 1e-2, 1e-4, 0.25
    assert per_image_mse(noisy, clean).tolist() == pytest.approx([1e-2, 1e-4, 0.25])
    assert psnr(noisy, clean).tolist() == pytest.approx([20.0, 40.0, -10 * math.log10(0.25)], rel=1e-5)


def test_psnr_of_identical_images_is_finite():
    x = torch.rand(2, 1, 8, 8)
    assert torch.isfinite(psnr(x, x)).all()


def test_ssim_is_one_for_identical_images_and_lower_for_noisy_ones():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim((x + 0.3 * torch.randn_like(x)).clamp(0, 1), x) < 0.9


def test_auroc_of_perfect_inverted_and_random_scores():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert auroc(torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), labels) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]), labels) == 0.0
    generator = torch.Generator().manual_seed(0)
    random_labels = torch.randint(0, 2, (20000,), generator=generator)
    assert auroc(torch.rand(20000, generator=generator), random_labels) == pytest.approx(0.5, abs=0.02)
    assert auroc(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([0, 0, 1, 1])) == 0.875  # ties count half


def test_probes_on_separable_and_on_random_codes():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(10, 8))
    train_y, test_y = rng.integers(0, 10, 500), rng.integers(0, 10, 200)
    train_x, test_x = centres[train_y] + rng.normal(size=(500, 8)), centres[test_y] + rng.normal(size=(200, 8))
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=5) == 1.0
    noise_x = rng.normal(size=(500, 8)), rng.normal(size=(200, 8))
    assert linear_probe_accuracy(noise_x[0], train_y, noise_x[1], test_y) < 0.3  # chance is 0.1
    assert knn_accuracy(noise_x[0], train_y, noise_x[1], test_y) < 0.3


def test_relative_error_ignores_how_much_ink_a_digit_has():
    faint, bold = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    faint[..., 0, :2], bold[..., :2, :] = 1.0, 1.0  # 2 and 8 lit pixels
    assert relative_error(faint * 0.9, faint).item() == pytest.approx(relative_error(bold * 0.9, bold).item())
    assert per_image_mse(faint * 0.9, faint).item() < per_image_mse(bold * 0.9, bold).item()


def test_knn_distance_is_the_mean_distance_to_the_nearest_references():
    reference = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    points = torch.tensor([[0.0, 0.0], [6.0, 0.0]])
    assert knn_distance(reference, points, 1).tolist() == [0.0, 3.0]
    assert knn_distance(reference, points, 2).tolist() == pytest.approx([1.5, 4.5])  # (0 + 3) / 2, (3 + 6) / 2
    assert knn_distance(reference, points, 10).tolist() == pytest.approx([7 / 3, (3 + 6 + 52**0.5) / 3])  # k above the references: all of them


def test_knn_distance_of_the_reference_itself_leaves_each_point_out():
    reference = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert knn_distance(reference, reference, 1, exclude_self=True).tolist() == [3.0, 3.0, 4.0]
    assert knn_distance(reference, reference, 2, exclude_self=True).tolist() == pytest.approx([3.5, 4.0, 4.5])  # (3 + 4) / 2, (3 + 5) / 2, (4 + 5) / 2
