from types import SimpleNamespace

import pytest
import torch

from autoencoder.evaluation.likelihood import likelihood
from autoencoder.models.variants import Variational
from tests.models.test_variants import linear_gaussian_model


@pytest.mark.parametrize("decodes", [1, 4, 10, 25, 1000])
def test_every_grouping_of_the_decodes_gives_each_image_its_own_exact_likelihood(decodes):
    # With the exact posterior every importance weight is p(x), whatever the draws: a sample weighed
    # against another image's posterior or image, or a chunk counted twice, would show.
    net, p_x = linear_gaussian_model(0.5, exact_posterior=True)
    module = SimpleNamespace(net=net, variant=Variational(sigma=0.5), hparams=SimpleNamespace(loss="mse"))
    x = torch.randn(7, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    result = likelihood(module, x, samples=10, decodes=decodes)
    assert result["samples"] == 10
    assert result["nll_nats"] == pytest.approx(-p_x.log_prob(x.flatten(1)).mean().item(), abs=1e-4)
