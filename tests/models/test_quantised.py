import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from autoencoder.models.networks import Autoencoder, ConvAutoencoder, MLPAutoencoder
from autoencoder.models.quantised import VQVAE, nearest_codes, perplexity
from autoencoder.training.run import train
from autoencoder.utils.errors import UserError


class GridIdentity(Autoencoder):
    """A grid network whose code grid is its input: images (B, D, h, w) are their own encoder output."""

    def __init__(self, shape=(2, 1, 3)):
        super().__init__(nn.Flatten(), nn.Unflatten(1, shape), latent_dim=shape[0], input_shape=shape, code_shape=shape)


def vqvae(codebook, **settings) -> VQVAE:
    """A VQ-VAE whose codebook (K, D) is given, with EMA counts of 1 per code."""
    variant = VQVAE(latent_dim=codebook.shape[1], codebook_size=len(codebook), **settings)
    variant.codebook.copy_(codebook)
    variant.ema_count.fill_(1.0)
    variant.ema_sum.copy_(codebook)
    return variant


CODEBOOK = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])


def grid_of(vectors):
    """Vectors (L, D) as one image of GridIdentity's shape (1, D, 1, L)."""
    return torch.tensor(vectors).T[None, :, None, :]


def test_each_vector_gets_its_nearest_code():
    z = torch.tensor([[0.1, 0.1], [0.9, -0.2], [0.2, 1.5], [0.6, 0.0], [0.3, 0.9]])
    assert nearest_codes(z, CODEBOOK).tolist() == [0, 1, 2, 1, 0]  # the last: 0.9 from 0, 1.16 from 2


def test_the_code_is_the_quantised_grid_flat_and_indices_are_the_grid_of_choices():
    variant, net = vqvae(CODEBOOK), GridIdentity()
    x = grid_of([[0.9, -0.2], [0.2, 1.5], [0.1, 0.1]])  # (1, 2, 1, 3)
    assert variant.indices(net, x).tolist() == [[[1, 2, 0]]]
    assert torch.equal(variant.code(net.encode(x)), grid_of([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]).flatten(1))
    assert torch.equal(variant.decode_indices(net, torch.tensor([[[2, 2, 1]]])), grid_of([[0.0, 2.0], [0.0, 2.0], [1.0, 0.0]]))


def test_the_gradient_passes_the_quantisation_straight_through():
    variant, net = vqvae(CODEBOOK, beta=0.0).eval(), GridIdentity()
    x = grid_of([[0.9, -0.2], [0.2, 1.5], [0.1, 0.1]]).requires_grad_(True)
    target = torch.rand(1, 2, 1, 3)
    variant.terms(net, x, target, "mse")["reconstruction"].backward()
    q = grid_of([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(x.grad, 2 * (q - target) / q.numel())  # d mse / d q, at the encoder's output


def test_the_commitment_by_hand():
    variant = vqvae(CODEBOOK, beta=0.5).eval()
    x = grid_of([[0.9, -0.2], [0.2, 1.5], [0.1, 0.1]])
    squares = [0.1**2 + 0.2**2, 0.2**2 + 0.5**2, 0.1**2 + 0.1**2]
    assert variant.terms(GridIdentity(), x, x, "mse")["commitment"].item() == pytest.approx(0.5 * sum(squares) / 6)


def test_the_commitment_pulls_the_encoder_only():
    variant = vqvae(CODEBOOK, beta=1.0).eval()
    x = grid_of([[0.9, -0.2], [0.2, 1.5], [0.1, 0.1]]).requires_grad_(True)
    variant.terms(GridIdentity(), x, x, "mse")["commitment"].backward()
    assert torch.count_nonzero(x.grad) > 0 and not any(b.requires_grad for b in variant.buffers())


def test_a_training_step_moves_each_code_to_the_ema_of_its_vectors():
    variant = vqvae(CODEBOOK, decay=0.5, dead_threshold=0.1).train()
    x = grid_of([[0.2, 0.2], [0.4, 0.0], [0.8, 0.0]])  # two vectors for code 0, one for code 1, none for code 2
    variant.terms(GridIdentity(), x, x, "mse")
    # code k: (decay * count_k * e_k + (1 - decay) * sum of its vectors) / (decay * count_k + (1 - decay) * n_k)
    expected = torch.tensor([[(0.5 * 0 + 0.5 * 0.6) / 1.5, (0.5 * 0 + 0.5 * 0.2) / 1.5], [(0.5 + 0.5 * 0.8) / 1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(variant.codebook, expected)
    torch.testing.assert_close(variant.ema_count, torch.tensor([1.5, 1.0, 0.5]))


def test_evaluation_leaves_the_codebook_alone():
    variant = vqvae(CODEBOOK).eval()
    variant.terms(GridIdentity(), grid_of([[0.2, 0.2], [0.4, 0.0], [0.8, 0.0]]), torch.zeros(1, 2, 1, 3), "mse")
    assert torch.equal(variant.codebook, CODEBOOK)


def test_a_dead_code_is_restarted_on_an_encoder_vector():
    variant = vqvae(CODEBOOK, decay=0.9, dead_threshold=0.5).train()
    variant.ema_count.copy_(torch.tensor([1.0, 1.0, 0.5]))  # code 2 is at its last use: below 0.5 after one more unused step
    vectors = [[0.1, 0.1], [0.9, 0.1], [1.1, -0.1]]
    torch.manual_seed(0)
    variant.terms(GridIdentity(), grid_of(vectors), torch.zeros(1, 2, 1, 3), "mse")
    assert variant.codebook[2].tolist() in torch.tensor(vectors).tolist()
    assert variant.ema_count[2].item() == 0.5 and torch.equal(variant.ema_sum[2], 0.5 * variant.codebook[2])  # restarted at the threshold
    torch.testing.assert_close(variant.codebook[1], torch.tensor([(0.9 * 1 + 0.1 * 2.0) / 1.1, (0.1 * 0.0) / 1.1]))  # a used code is not restarted


def test_a_fresh_codebook_starts_its_unused_codes_on_the_data():
    variant = VQVAE(latent_dim=2, codebook_size=8).train()  # every count at the threshold: unused once, dead
    x = torch.randn(1, 2, 1, 20) + 50  # far from every code: all vectors choose one code
    variant.terms(GridIdentity((2, 1, 20)), x, x, "mse")
    vectors = x[0, :, 0].T.tolist()
    assert sum(code in vectors for code in variant.codebook.tolist()) == 7  # the eighth, chosen, is their mean


def test_codebook_use_and_perplexity():
    assert perplexity(torch.tensor([3.0, 3.0, 3.0, 3.0])).item() == pytest.approx(4)
    assert perplexity(torch.tensor([5.0, 0.0, 0.0, 0.0])).item() == pytest.approx(1)
    variant = vqvae(CODEBOOK).eval()
    variant.terms(GridIdentity(), grid_of([[0.2, 0.2], [0.4, 0.0], [0.8, 0.0]]), torch.zeros(1, 2, 1, 3), "mse")
    statistics = variant.statistics()
    assert statistics["codebook_use"].item() == pytest.approx(2 / 3)
    assert statistics["perplexity"].item() == pytest.approx(1.5 ** (2 / 3) * 3 ** (1 / 3))  # exp(-(2/3 ln 2/3 + 1/3 ln 1/3))


def test_a_codebook_of_one_is_refused():
    with pytest.raises(UserError, match="variant.codebook_size=1: a codebook of 1 cannot code anything"):
        VQVAE(latent_dim=2, codebook_size=1)


@pytest.mark.parametrize("shape, grid", [((1, 28, 28), (7, 7)), ((3, 32, 32), (8, 8))])
def test_the_conv_network_codes_a_grid_flat_and_decodes_it_back(shape, grid):
    net = ConvAutoencoder(latent_dim=5, input_shape=shape, grid=True)
    x = torch.rand(2, *shape)
    assert net.code_shape == (5, *grid) and net.code_size == 5 * grid[0] * grid[1]
    assert net.encode(x).shape == (2, net.code_size) and net.decode(net.encode(x)).shape == x.shape
    assert not any(isinstance(m, nn.Linear) for m in net.modules())
    assert ConvAutoencoder(latent_dim=5, input_shape=shape, grid=True, heads=2).encode(x).shape == (2, 2 * net.code_size)


def test_flat_networks_keep_their_flat_code():
    for net in (ConvAutoencoder(latent_dim=4), MLPAutoencoder(latent_dim=4)):
        assert net.code_shape == (4,) and net.code_size == 4 and net.encode(torch.rand(2, 1, 28, 28)).shape == (2, 4)


def test_networks_without_a_grid_refuse_one():
    with pytest.raises(UserError, match="model=mlp gives a flat code.*use model=conv"):
        MLPAutoencoder(latent_dim=4, grid=True)
    with pytest.raises(UserError, match=r"model.fc_hidden=\[8\] adds linear layers before a flat code, and this variant codes a grid: leave it empty"):
        ConvAutoencoder(latent_dim=4, fc_hidden=[8], grid=True)


def test_a_short_training_run_logs_codebook_use_and_perplexity(make_cfg, tmp_path):
    metrics = train(make_cfg("variant=vqvae", "model.latent_dim=8", "variant.codebook_size=16"))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for stage, suffix in (("train", "_epoch"), ("val", ""), ("test", "")):
        assert {f"{stage}/{name}{suffix}" for name in ("perplexity", "codebook_use", "commitment", "reconstruction")} <= scalars
    use, perplexity_ = events.Scalars("val/codebook_use")[-1].value, events.Scalars("val/perplexity")[-1].value
    assert 0 < use <= 1 and 1 <= perplexity_ <= 16
    reconstruction, commitment = events.Scalars("test/reconstruction")[-1].value, events.Scalars("test/commitment")[-1].value
    assert metrics["test_loss"] == pytest.approx(reconstruction + commitment, rel=1e-4)  # the statistics are not in the loss
