import math

import pytest
import torch

from autoencoder.evaluation.likelihood import likelihood
from autoencoder.evaluation.sampling import prior_images
from autoencoder.models.gaussians import gaussian_log_density, posterior, reparameterise, standard_normal_log_density
from autoencoder.models.module import LitAutoencoder
from autoencoder.models.networks import ConvAutoencoder
from autoencoder.models.priors import MixturePrior, Prior, StandardNormal, VampPrior
from autoencoder.models.variants import IWAE, Variational
from tests.conftest import train_briefly
from tests.models.test_variants import Linear, linear_gaussian_model


def vamp_with(logits: torch.Tensor) -> VampPrior:
    """A VampPrior on (1, 2, 2) images whose pseudo-inputs are sigmoid(`logits`) (K, 1, 2, 2)."""
    vamp = VampPrior(input_shape=(1, 2, 2), pseudo_inputs=len(logits))
    vamp.logits.data = logits
    return vamp


def mixture_with(logits: list[float], means: list[list[float]], logvars: list[list[float]]) -> MixturePrior:
    prior = MixturePrior(latent_dim=len(means[0]), components=len(means))
    prior.logits.data, prior.means.data, prior.logvars.data = torch.tensor(logits), torch.tensor(means), torch.tensor(logvars)
    return prior


def test_standard_normal_kl_is_the_expectation_of_the_one_sample_estimate():
    mean, logvar = torch.tensor([[1.0, -0.5]]).expand(200000, 2), torch.tensor([[0.3, -1.0]]).expand(200000, 2)
    prior = StandardNormal()
    z = reparameterise(mean, logvar, torch.Generator().manual_seed(0))
    estimates = Prior.kl(prior, None, mean, logvar, z)  # log q(z|x) - log p(z), the estimate without a closed form
    closed = prior.kl(None, mean, logvar, z)
    assert torch.equal(closed, closed[:1].expand(200000)) and estimates.mean().item() == pytest.approx(closed[0].item(), abs=0.01)


def test_vamp_prior_log_density_is_the_mean_of_its_components_densities_by_hand():
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))  # pixels to (mean, logvar), latent 2
    net, logits = Linear(w, torch.zeros(4, 2)), torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
    h = (torch.sigmoid(logits).flatten(1) @ w.T).double()  # (K=2, 4): each pseudo-input's mean and log-variance
    expected = []
    for code in z.double():
        densities = [torch.distributions.Normal(h[k, :2], (0.5 * h[k, 2:]).exp()).log_prob(code).sum().exp() for k in range(2)]
        expected.append(math.log(0.5 * densities[0] + 0.5 * densities[1]))
    assert vamp_with(logits).log_density(net, z).tolist() == pytest.approx(expected, rel=1e-5)


def test_a_fixed_vamp_prior_encodes_its_pseudo_inputs_once_and_gives_the_same_densities():
    net = Linear(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(4, 2))
    vamp, z = vamp_with(torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(1))), torch.randn(5, 2)
    unfixed, calls = vamp.log_density(net, z), []
    net.encoder.register_forward_hook(lambda *_: calls.append(1))
    with vamp.fixed(net):
        fixed = [vamp.log_density(net, z) for _ in range(3)]
    assert len(calls) == 1 and all(torch.equal(unfixed, f) for f in fixed)
    vamp.log_density(net, z)
    assert len(calls) == 2  # outside, each use encodes them again: the network may have changed


def test_a_vamp_prior_whose_pseudo_input_encodes_to_the_standard_normal_is_the_vaes():
    # Every row of the encoder is orthogonal to the pseudo-input 0.5 (logit 0): q(z|u) = N(0, I).
    w = torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1], [1, -1, 1, -1]])
    net, vamp = Linear(w, torch.randn(4, 2)), vamp_with(torch.zeros(1, 1, 2, 2))
    x = torch.rand(6, 1, 2, 2)
    z = torch.randn(6, 2)
    torch.testing.assert_close(vamp.log_density(net, z), standard_normal_log_density(z))
    weights = [v.weights_of(net, *posterior(net.encode(x)), x, 4, "mse", torch.Generator().manual_seed(0)) for v in (Variational(prior=vamp), Variational())]
    torch.testing.assert_close(*weights)  # the likelihood's importance weights use the variant's prior


def test_a_vae_with_a_vamp_prior_has_the_one_sample_kl_and_trains_the_pseudo_inputs():
    net = Linear(torch.randn(4, 4, requires_grad=True), torch.randn(4, 2, requires_grad=True))
    vae, x = Variational(prior=vamp_with(torch.randn(3, 1, 2, 2))), torch.rand(5, 1, 2, 2)
    terms = vae.terms(net, x, x, "mse", torch.Generator().manual_seed(0))
    mean, logvar = posterior(net.encode(x))
    z = reparameterise(mean, logvar, torch.Generator().manual_seed(0))
    expected = (gaussian_log_density(z, mean, logvar) - vae.prior.log_density(net, z)).mean()
    assert terms["kl"].item() == pytest.approx(expected.item(), rel=1e-5)
    terms["kl"].backward()
    assert vae.prior.logits.grad.abs().sum() > 0 and net.encoder[1].weight.grad.abs().sum() > 0
    assert "prior.logits" in vae.state_dict()  # the variant's own parameters, so the module's and the checkpoint's


def test_vamp_encodes_its_pseudo_inputs_as_at_evaluation_leaving_batchnorm_statistics_alone():
    net, vamp = ConvAutoencoder(latent_dim=2, input_shape=(1, 8, 8), heads=Variational.heads), VampPrior(input_shape=(1, 8, 8), pseudo_inputs=3)
    before = {name: b.clone() for name, b in net.named_buffers()}
    means, logvars = vamp.components(net)
    assert means.shape == logvars.shape == (3, 2) and net.training
    assert all(torch.equal(b, before[name]) for name, b in net.named_buffers())


def test_vamp_prior_samples_are_seeded_and_come_from_its_components():
    # Two pseudo-inputs far apart in code space, each with a small variance.
    w = torch.tensor([[10.0, 0, 0, 0], [0, 10.0, 0, 0], [-8.0, -8, 0, 0], [-8.0, -8, 0, 0]])  # log-variances about -8
    net, vamp = Linear(w, torch.zeros(4, 2)), vamp_with(torch.tensor([5.0, -5, 0, 0, -5, 5, 0, 0]).view(2, 1, 2, 2))
    draws = [vamp.sample(net, 2000, torch.Generator().manual_seed(seed)) for seed in (0, 0, 1)]
    assert draws[0].shape == (2000, 2) and torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    means = vamp.components(net)[0].detach()  # (2, 2)
    nearest = torch.cdist(draws[0], means).argmin(1)
    assert (draws[0] - means[nearest]).abs().max() < 0.1  # sigma about exp(-4) = 0.018
    assert nearest.float().mean().item() == pytest.approx(0.5, abs=0.05)  # a component drawn uniformly


def test_mixture_prior_log_density_by_hand():
    # Weights softmax([0, log 3]) = (1/4, 3/4); in 1-d, N(z; -1, 1) and N(z; 2, 4).
    prior = mixture_with([0.0, math.log(3)], [[-1.0], [2.0]], [[0.0], [math.log(4)]])
    z = torch.tensor([[0.0], [-1.5], [3.0]])

    def normal(x: float, mean: float, var: float) -> float:
        return math.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)

    expected = [math.log(0.25 * normal(x, -1, 1) + 0.75 * normal(x, 2, 4)) for x in (0.0, -1.5, 3.0)]
    assert prior.log_density(None, z).tolist() == pytest.approx(expected, rel=1e-6)


def test_mixture_prior_samples_follow_its_weights_means_and_variances_and_are_seeded():
    prior = mixture_with([0.0, math.log(4)], [[-5.0, 0.0], [5.0, 1.0]], [[0.0, 0.0], [math.log(0.25), 0.0]])  # weights 0.2, 0.8
    draws = [prior.sample(None, 20000, torch.Generator().manual_seed(seed)) for seed in (0, 0, 1)]
    assert draws[0].shape == (20000, 2) and torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    second = draws[0][:, 0] > 0  # the components are 10 standard deviations apart
    assert second.float().mean().item() == pytest.approx(0.8, abs=0.01)
    for k, chosen in enumerate((~second, second)):
        torch.testing.assert_close(draws[0][chosen].mean(0), prior.means[k].detach(), atol=0.05, rtol=0)
        torch.testing.assert_close(draws[0][chosen].var(0), prior.logvars[k].detach().exp(), atol=0.05, rtol=0)


def test_mixture_prior_starts_with_distinct_components_of_equal_weight_and_learns_all_its_parts():
    prior = MixturePrior(latent_dim=3, components=4)
    assert prior.means.shape == prior.logvars.shape == (4, 3) and torch.equal(prior.logits, torch.zeros(4))
    assert len({tuple(m.tolist()) for m in prior.means}) == 4
    net = Linear(torch.randn(6, 4), torch.randn(4, 3))
    x = torch.rand(5, 1, 2, 2)
    Variational(prior=prior).terms(net, x, x, "mse", torch.Generator().manual_seed(0))["kl"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (prior.means, prior.logvars, prior.logits))


def test_iwae_with_a_vamp_prior_and_one_sample_is_the_elbo_with_the_sampled_kl():
    net, _ = linear_gaussian_model(0.5, exact_posterior=False)
    vamp = vamp_with(torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(3)))
    x = torch.randn(50, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    bound = IWAE(samples=1, sigma=0.5, prior=vamp).terms(net, x, x, "mse", torch.Generator().manual_seed(1))["bound"]
    terms = Variational(sigma=0.5, prior=vamp).terms(net, x, x, "mse", torch.Generator().manual_seed(1))  # its KL: the sampled one
    assert bound.item() == pytest.approx((terms["reconstruction"] + terms["kl"]).item(), rel=1e-6)


@pytest.mark.parametrize(
    ("variant", "prior", "size", "parameters"),
    [("iwae", "vamp", "pseudo_inputs", ("logits",)), ("vae", "mixture", "components", ("means", "logvars", "logits"))],
)
def test_a_learned_prior_trains_and_its_checkpoint_rebuilds_it(fake_mnist, tmp_path, variant, prior, size, parameters):
    small = ("model=mlp", "model.hidden=[32]", "model.latent_dim=4")
    checkpoint = train_briefly(fake_mnist, tmp_path, f"variant={variant}", f"prior={prior}", f"prior.{size}=4", *small)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    samples = []
    for seed in (0, 1):  # whatever a fresh prior would start as, the checkpoint's parameters replace it
        torch.manual_seed(seed)
        module = LitAutoencoder.load_from_checkpoint(checkpoint, map_location="cpu").eval()
        assert type(module.variant.prior).__name__ == {"vamp": "VampPrior", "mixture": "MixturePrior"}[prior]
        assert all(torch.equal(getattr(module.variant.prior, name), saved[f"variant.prior.{name}"]) for name in parameters)
        with torch.no_grad():
            samples.append(module.variant.prior.sample(module.net, 16, torch.Generator().manual_seed(7)))
    assert samples[0].shape == (16, 4) and torch.equal(*samples)
    images = torch.rand(6, 1, 28, 28).round()  # the likelihood and the prior's images work with every prior
    bounds = likelihood(module, images, samples=8, decodes=4)
    assert math.isfinite(bounds["nll_nats"]) and math.isfinite(bounds["negative_elbo_nats"])
    assert prior_images(module, 4, seed=0).shape == (4, 1, 28, 28)
