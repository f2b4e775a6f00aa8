import itertools

import pytest
import torch

from autoencoder.models.code_prior import MaskedConv2d, PixelCNN


@pytest.mark.parametrize("layers, kernel_size", [(1, 3), (3, 3), (2, 5)])
def test_each_place_depends_only_on_the_places_before_it(layers, kernel_size):
    torch.manual_seed(0)
    prior = PixelCNN(codebook_size=4, channels=8, layers=layers, kernel_size=kernel_size).eval()
    grid = torch.randint(4, (1, 4, 5))
    logits = prior(grid)  # (1, K, 4, 5)
    for place in range(20):  # change one place: the logits before and at it stay, some after it move
        i, j = divmod(place, 5)
        changed = grid.clone()
        changed[0, i, j] = (grid[0, i, j] + 1) % 4
        moved = (prior(changed) - logits).abs().amax(1).flatten()  # (h * w,), in raster order
        assert torch.all(moved[: place + 1] == 0)
        if place < 19:
            assert moved[place + 1 :].max() > 0


def test_the_first_mask_hides_the_centre_and_the_later_ones_show_it():
    first, later = MaskedConv2d(1, 1, 3, include_centre=False).mask, MaskedConv2d(1, 1, 3, include_centre=True).mask
    assert first.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert later.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


def test_the_probabilities_of_all_grids_sum_to_one():
    torch.manual_seed(0)
    prior = PixelCNN(codebook_size=2, channels=4, layers=2).eval()
    grids = torch.tensor(list(itertools.product(range(2), repeat=2))).view(4, 2, 1)  # every 2x1 grid of K = 2
    assert prior.log_prob(grids).exp().sum().item() == pytest.approx(1.0)


def test_the_log_probability_by_hand():
    torch.manual_seed(0)
    prior = PixelCNN(codebook_size=3, channels=4, layers=2).eval()
    grid = torch.tensor([[[2, 0]]])  # (1, 1, 2)
    with torch.no_grad():
        first = torch.log_softmax(prior(torch.zeros_like(grid))[0, :, 0, 0], 0)[2]  # the first place sees nothing
        second = torch.log_softmax(prior(grid)[0, :, 0, 1], 0)[0]
        assert prior.log_prob(grid).item() == pytest.approx((first + second).item(), abs=1e-6)


def test_samples_have_the_grids_shape_and_range_and_follow_the_seed():
    torch.manual_seed(0)
    prior = PixelCNN(codebook_size=5, channels=8, layers=2).eval()
    draws = [prior.sample(6, (3, 4), torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    assert draws[0].shape == (6, 3, 4) and draws[0].dtype == torch.long
    assert draws[0].min() >= 0 and draws[0].max() < 5
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_samples_follow_the_priors_probabilities():
    torch.manual_seed(0)
    prior = PixelCNN(codebook_size=2, channels=4, layers=2).eval()
    grids = prior.sample(4000, (2, 1), torch.Generator().manual_seed(0)).view(-1, 2)
    frequencies = torch.stack([((grids[:, 0] == a) & (grids[:, 1] == b)).float().mean() for a in range(2) for b in range(2)])
    every = torch.tensor(list(itertools.product(range(2), repeat=2))).view(4, 2, 1)
    with torch.no_grad():
        torch.testing.assert_close(frequencies, prior.log_prob(every).exp(), atol=0.03, rtol=0)
