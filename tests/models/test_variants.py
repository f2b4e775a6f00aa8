import math

import pytest
import torch
from torch import nn

from autoencoder.models.gaussians import gaussian_log_density, posterior, reparameterise, standard_normal_log_density
from autoencoder.models.networks import Autoencoder, ConvAutoencoder, MLPAutoencoder
from autoencoder.models.variants import IWAE, Contractive, Plain, Sparse, Variational, jacobian_norm_estimate


class Linear(Autoencoder):
    """Images (B, 1, 2, 2) to codes through one linear map each way (no bias, no Sigmoid), so that
    the codes, the Jacobian and the likelihood can be worked out by hand."""

    def __init__(self, encoder_weight: torch.Tensor, decoder_weight: torch.Tensor):
        encoder, decoder = nn.Linear(4, encoder_weight.shape[0], bias=False), nn.Linear(decoder_weight.shape[1], 4, bias=False)
        encoder.weight.data, decoder.weight.data = encoder_weight, decoder_weight
        super().__init__(nn.Sequential(nn.Flatten(), encoder), nn.Sequential(decoder, nn.Unflatten(1, (1, 2, 2))), decoder_weight.shape[1], (1, 2, 2))


def test_plain_terms_are_the_reconstruction_loss_alone():
    net = Linear(torch.eye(4), torch.eye(4))
    x = torch.rand(3, 1, 2, 2)
    noisy = x + 0.1
    terms = Plain().terms(net, noisy, x, "mse")
    assert list(terms) == ["reconstruction"] and terms["reconstruction"].item() == pytest.approx(0.01)


def test_sparse_penalty_is_the_l1_of_known_codes():
    net = Linear(torch.tensor([[1.0, 0, 0, 0], [0, -2.0, 0, 0]]), torch.zeros(4, 2))
    x = torch.tensor([1.0, 0.5, 0, 0]).view(1, 1, 2, 2)  # codes 1 and -1
    terms = Sparse(weight=0.3).terms(net, x, x, "mse")
    assert terms["sparsity"].item() == pytest.approx(0.3 * (1 + 1) / 2)


def test_contractive_penalty_of_a_linear_encoder_is_its_weights_frobenius_norm():
    # Orthogonal rows: every +-1 projection gives ||W||_F^2 exactly.
    w = torch.tensor([[3.0, 0, 0, 0], [0, 0, -2.0, 0]])
    net = Linear(w, torch.zeros(4, 2))
    x = torch.rand(5, 1, 2, 2)
    for _ in range(3):
        assert Contractive(weight=0.5).terms(net, x, x, "mse")["contractive"].item() == pytest.approx(0.5 * 13)
    # Any W: unbiased, so many projections come close to ||W||_F^2.
    torch.manual_seed(0)
    w = torch.randn(3, 4)
    x = torch.rand(200, 4, requires_grad=True)
    estimate = jacobian_norm_estimate(x @ w.T, x, projections=50)
    assert estimate.item() == pytest.approx(w.pow(2).sum().item(), rel=0.05)


def test_contractive_penalty_trains_the_encoder_and_is_left_out_without_gradients():
    net = Linear(torch.randn(2, 4, requires_grad=True), torch.zeros(4, 2))
    x = torch.rand(5, 1, 2, 2)
    Contractive(weight=1.0).terms(net, x, x, "mse")["contractive"].backward()
    assert net.encoder[1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert list(Contractive().terms(net, x, x, "mse")) == ["reconstruction"]


def test_vae_terms_by_hand_with_beta_and_warmup():
    # Encoder: mean = first two pixels, log-variance = 0; decoder: zeros, so the Gaussian
    # likelihood is -0.5 sum(x^2 / sigma^2 + log(2 pi sigma^2)) whatever z is.
    net = Linear(torch.cat([torch.eye(4)[:2], torch.zeros(2, 4)]), torch.zeros(4, 2))
    x = torch.tensor([0.6, 0.8, 0.5, 0.0]).view(1, 1, 2, 2)
    vae = Variational(beta=2.0, warmup_epochs=4, sigma=0.5)
    terms = vae.terms(net, x, x, "mse")
    expected_nll = 0.5 * (1.25 / 0.25 + 4 * math.log(2 * math.pi * 0.25))
    assert terms["reconstruction"].item() == pytest.approx(expected_nll, rel=1e-5)
    assert terms["kl"].item() == pytest.approx(2.0 * 0.5 * (0.36 + 0.64), rel=1e-5)  # beta x KL outside training
    assert vae.terms(net, x, x, "mse", progress=1.0)["kl"].item() == pytest.approx(0.25 * 2.0 * 0.5, rel=1e-5)
    assert vae.code(net.encode(x)).tolist() == [[pytest.approx(0.6), pytest.approx(0.8)]]


def test_bernoulli_likelihood_is_the_summed_bce():
    probabilities, x = torch.full((2, 1, 2, 2), 0.25), torch.tensor([1.0, 0, 0, 1]).repeat(2, 1).view(2, 1, 2, 2)
    expected = 2 * math.log(0.25) + 2 * math.log(0.75)
    assert Variational().log_likelihood(probabilities, x, "bce").tolist() == [pytest.approx(expected)] * 2


def test_validation_samples_are_seeded():
    net = Linear(torch.randn(4, 4), torch.randn(4, 2))
    x = torch.rand(3, 1, 2, 2)
    first, again = (Variational().terms(net, x, x, "mse", torch.Generator().manual_seed(1))["reconstruction"] for _ in range(2))
    assert first == again


def linear_gaussian_model(sigma: float, exact_posterior: bool):
    """A VAE whose log p(x) is known: p(z) = N(0, I), p(x|z) = N(Wz, sigma^2 I), so p(x) = N(0, WW^T + sigma^2 I).
    Its exact posterior has mean A x, A = (W^T W + sigma^2 I)^-1 W^T, and covariance sigma^2 (W^T W + sigma^2 I)^-1,
    diagonal when W's columns are orthogonal."""
    w = torch.tensor([[1.0, 0], [0, 0.5], [0, 0], [0, 0]])
    precision = w.T @ w + sigma**2 * torch.eye(2)
    mean_map = torch.linalg.solve(precision, w.T) if exact_posterior else 0.5 * w.T
    logvar = torch.log(sigma**2 / torch.diag(precision)) if exact_posterior else torch.zeros(2)

    class Net(Autoencoder):
        def __init__(self):
            super().__init__(nn.Flatten(), nn.Sequential(nn.Linear(2, 4, bias=False), nn.Unflatten(1, (1, 2, 2))), 2, (1, 2, 2))
            self.decoder[0].weight.data = w

        def encode(self, x):
            return torch.cat([x.flatten(1) @ mean_map.T, logvar.expand(len(x), 2)], dim=1)

    covariance = w @ w.T + sigma**2 * torch.eye(4)
    return Net(), torch.distributions.MultivariateNormal(torch.zeros(4), covariance)


def test_importance_weights_give_the_exact_log_likelihood_with_the_exact_posterior():
    net, p_x = linear_gaussian_model(0.5, exact_posterior=True)
    x = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    weights = Variational(sigma=0.5).weights_of(net, *posterior(net.encode(x)), x, 3, "mse", torch.Generator().manual_seed(0))
    assert torch.allclose(weights, p_x.log_prob(x.flatten(1))[:, None].expand(6, 3), atol=1e-4)


@torch.no_grad()
def test_importance_weighted_bound_is_above_the_elbo_and_tightens_with_k():
    net, p_x = linear_gaussian_model(0.5, exact_posterior=False)
    vae = Variational(sigma=0.5)
    x = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    elbo = -vae.negative_elbo(net, x, "mse", generator).mean()
    bounds = [(vae.weights_of(net, *posterior(net.encode(x)), x, k, "mse", generator).logsumexp(1) - math.log(k)).mean() for k in (1, 10, 100, 1000)]
    exact = p_x.log_prob(x.flatten(1)).mean()
    assert bounds[0] == pytest.approx(elbo.item(), abs=0.1)  # k = 1 is the ELBO (its Monte Carlo estimate)
    assert elbo < bounds[1] < bounds[2] < bounds[3] <= exact + 1e-3
    assert exact - bounds[3] < 0.1 * (exact - elbo)


def test_iwae_with_one_sample_is_the_elbo_with_the_kl_from_the_same_sample():
    # Exactly: the same draw z as the VAE's, -log p(x|z) - log p(z) + log q(z|x). On average over
    # draws: the VAE's loss (beta = 1), whose KL is the closed form of E_q[log q(z|x) - log p(z)].
    net, _ = linear_gaussian_model(0.5, exact_posterior=False)
    x = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    bound = IWAE(samples=1, sigma=0.5).terms(net, x, x, "mse", torch.Generator().manual_seed(1))["bound"]
    vae = Variational(sigma=0.5)
    terms = vae.terms(net, x, x, "mse", torch.Generator().manual_seed(1))
    mean, logvar = posterior(net.encode(x))
    z = reparameterise(mean, logvar, torch.Generator().manual_seed(1))
    sampled_kl = (gaussian_log_density(z, mean, logvar) - standard_normal_log_density(z)).mean()
    assert bound.item() == pytest.approx((terms["reconstruction"] + sampled_kl).item(), rel=1e-6)
    assert bound.item() == pytest.approx((terms["reconstruction"] + terms["kl"]).item(), abs=0.05)


def test_iwae_bound_is_the_exact_log_likelihood_with_the_exact_posterior_for_every_k():
    net, p_x = linear_gaussian_model(0.5, exact_posterior=True)
    x = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    for k in (1, 3, 20):
        bound = IWAE(samples=k, sigma=0.5).terms(net, x, x, "mse", torch.Generator().manual_seed(k))["bound"]
        assert bound.item() == pytest.approx(-p_x.log_prob(x.flatten(1)).mean().item(), abs=1e-4)


@torch.no_grad()
def test_iwae_loss_on_a_fixed_batch_falls_with_k_on_average_over_draws():
    # Monotone in expectation only (Burda et al., Theorem 1): one draw of k + 1 samples can give a
    # looser bound than one of k. So: a fixed batch of 8 images, each repeated for 500 draws.
    net, p_x = linear_gaussian_model(0.5, exact_posterior=False)
    x = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    draws = x.repeat(500, 1, 1, 1)
    losses = [IWAE(samples=k, sigma=0.5).terms(net, draws, draws, "mse", torch.Generator().manual_seed(2))["bound"].item() for k in (1, 2, 10, 100)]
    exact = -p_x.log_prob(x.flatten(1)).mean().item()
    assert losses[0] > losses[1] > losses[2] > losses[3] >= exact - 1e-3


def test_iwae_weighs_the_clean_target_and_passes_codes_and_gradients():
    net = Linear(torch.randn(4, 4, requires_grad=True), torch.randn(4, 2, requires_grad=True))
    x = torch.rand(3, 1, 2, 2)
    iwae, generator = IWAE(samples=4), lambda: torch.Generator().manual_seed(0)
    denoising = iwae.terms(net, x + 0.3, x, "mse", generator(), code_terms=lambda z: {"codes": z.sum()})
    assert list(denoising) == ["bound", "codes"] and denoising["codes"].item() == pytest.approx(iwae.code(net.encode(x + 0.3)).sum().item())
    assert denoising["bound"] != iwae.terms(net, x + 0.3, x + 0.3, "mse", generator())["bound"]
    denoising["bound"].backward()
    assert net.encoder[1].weight.grad.abs().sum() > 0 and net.decoder[0].weight.grad.abs().sum() > 0


def test_iwae_trains_a_few_batches_and_tests_in_nats(make_cfg):
    from autoencoder.training.run import train

    metrics = train(make_cfg("variant=iwae", "variant.samples=3", "model=mlp", "model.hidden=[32]", "model.latent_dim=4", "logger=none"))
    assert math.isfinite(metrics["test_loss"]) and metrics["test_loss"] > 1  # a sum over 784 pixels, not a mean


@pytest.mark.parametrize("architecture", [ConvAutoencoder, MLPAutoencoder])
def test_a_gaussian_encoder_on_either_architecture_gives_mean_and_log_variance(architecture):
    net = architecture(latent_dim=3, input_shape=(1, 8, 8), heads=Variational.heads)
    x = torch.rand(2, 1, 8, 8)
    h = net.encode(x)
    assert h.shape == (2, 6) and net.decode(Variational().code(h)).shape == x.shape
    assert Variational().prior.sample(net, 5).shape == (5, 3)
