import math

import pytest
import torch

from autoencoder.models.gaussians import kl_to_standard_normal, mixture_log_density, reparameterise


def test_kl_of_known_means_and_variances():
    mean, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # 0.5 (mean^2 + var - log var - 1) per dimension: 0.5 (1 + 1 - 0 - 1) + 0.5 (0 + 4 - log 4 - 1)
    assert kl_to_standard_normal(mean, logvar).item() == pytest.approx(0.5 + 0.5 * (3 - math.log(4)))
    assert kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).tolist() == [0, 0]


def test_reparameterisation_passes_gradients_to_mean_and_log_variance():
    mean, logvar = torch.zeros(4, 3, requires_grad=True), torch.zeros(4, 3, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    z = reparameterise(mean, logvar, generator)
    z.sum().backward()
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mean.grad, torch.ones(4, 3)) and torch.allclose(logvar.grad, 0.5 * eps)


def test_mixture_log_density_of_many_codes_is_that_of_each_code_alone():
    # A thousand codes at a time: the chunks' results join in the codes' order.
    generator = torch.Generator().manual_seed(0)
    z, means, logvars = torch.randn(2500, 3, generator=generator), torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    log_weights = torch.randn(4, generator=generator).log_softmax(0)
    each = torch.cat([mixture_log_density(code[None], log_weights, means, logvars) for code in z[::500]])
    torch.testing.assert_close(mixture_log_density(z, log_weights, means, logvars)[::500], each)
