import pytest
import torch
from torch import nn

from autoencoder.models.corruption import Gaussian, Masking
from autoencoder.utils.errors import UserError
from autoencoder.models.networks import Autoencoder
from autoencoder.models.module import LitAutoencoder

# The steps are called directly here, without a Trainer to receive what they log.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def identity_module(corruption, loss="mse") -> LitAutoencoder:
    net = Autoencoder(nn.Flatten(), nn.Unflatten(1, (1, 4, 4)), latent_dim=16, input_shape=(1, 4, 4))
    return LitAutoencoder(net, corruption, optimizer=torch.optim.SGD, loss=loss)


def batch(n=8):
    return torch.rand(n, 1, 4, 4) * 0.8 + 0.1, torch.arange(n) % 10


def test_plain_autoencoder_identity_has_zero_loss():
    module = identity_module(Gaussian(noise=0))
    assert module.training_step(batch(), 0).item() == 0


def test_loss_is_against_the_clean_input():
    # Masking everything makes the (identity) reconstruction all zeros: the loss is then mean(x^2)
    # against the clean x, not 0 against the corrupted input.
    module = identity_module(Masking(noise=1.0))
    x, y = batch()
    assert module.training_step((x, y), 0).item() == pytest.approx(x.pow(2).mean().item())
    assert module.validation_step((x, y), 0)["loss"].item() == pytest.approx(x.pow(2).mean().item())


def test_eval_noise_is_fixed_and_training_noise_is_not():
    module = identity_module(Gaussian(noise=0.3))
    x, y = batch()
    assert module.validation_step((x, y), 3)["loss"] == module.validation_step((x, y), 3)["loss"]
    assert module.validation_step((x, y), 3)["loss"] != module.validation_step((x, y), 4)["loss"]
    assert module.training_step((x, y), 0) != module.training_step((x, y), 0)


def test_validation_returns_codes_and_labels():
    out = identity_module(Gaussian(noise=0)).validation_step(batch(5), 0)
    assert out["z"].shape == (5, 16) and out["y"].tolist() == [0, 1, 2, 3, 4]


def test_bce_loss():
    x, y = batch()
    loss = identity_module(Gaussian(noise=0), loss="bce").training_step((x, y), 0)
    assert loss.item() == pytest.approx(nn.functional.binary_cross_entropy(x, x).item())


def test_unknown_loss():
    with pytest.raises(UserError, match="loss must be one of mse, bce, got 'l2'"):
        identity_module(Gaussian(noise=0), loss="l2")


def test_unknown_compile_mode():
    net = Autoencoder(nn.Flatten(), nn.Unflatten(1, (1, 4, 4)), latent_dim=16, input_shape=(1, 4, 4))
    with pytest.raises(UserError, match="compile must be one of False, True, default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs, got 'fast'"):
        LitAutoencoder(net, Gaussian(noise=0), optimizer=torch.optim.SGD, compile="fast")
