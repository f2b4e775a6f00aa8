import pytest
import torch
from torch import nn

from autoencoder.models.module import LitAutoencoder
from autoencoder.models.networks import Autoencoder

# The steps are called directly here, without a Trainer to receive what they log.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


class Identity(Autoencoder):
    """A network that is neither conv nor MLP: codes are the flattened pixels."""

    def __init__(self, side: int = 4, heads: int = 1):
        assert heads == 1, "the identity gives one code"
        super().__init__(nn.Flatten(), nn.Unflatten(1, (1, side, side)), latent_dim=side * side, input_shape=(1, side, side))


def module(corruption: str = "Gaussian", noise: float = 0.0, loss: str = "mse", variant: dict | None = None) -> LitAutoencoder:
    return LitAutoencoder(
        net={"_target_": f"{__name__}.Identity"},
        corruption={"_target_": f"autoencoder.models.corruption.{corruption}", "noise": noise},
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        loss=loss,
        variant=variant,
    )


def batch(n=8):
    return torch.rand(n, 1, 4, 4) * 0.8 + 0.1, torch.arange(n) % 10


def test_plain_autoencoder_identity_has_zero_loss():
    assert module().training_step(batch(), 0).item() == 0


def test_loss_is_against_the_clean_input():
    # Masking everything makes the (identity) reconstruction all zeros: the loss is then mean(x^2)
    # against the clean x, not 0 against the corrupted input.
    lit = module("Masking", noise=1.0)
    x, y = batch()
    assert lit.training_step((x, y), 0).item() == pytest.approx(x.pow(2).mean().item())
    assert lit.validation_step((x, y), 0).item() == pytest.approx(x.pow(2).mean().item())


def test_eval_noise_is_fixed_and_training_noise_is_not():
    lit = module(noise=0.3)
    x, y = batch()
    assert lit.validation_step((x, y), 3) == lit.validation_step((x, y), 3)
    assert lit.validation_step((x, y), 3) != lit.validation_step((x, y), 4)
    assert lit.training_step((x, y), 0) != lit.training_step((x, y), 0)


def test_bce_loss():
    x, y = batch()
    loss = module(loss="bce").training_step((x, y), 0)
    assert loss.item() == pytest.approx(nn.functional.binary_cross_entropy(x, x).item())


def test_the_variants_terms_are_added_to_the_reconstruction_loss():
    x, y = batch()
    sparse = {"_target_": "autoencoder.models.variants.Sparse", "weight": 0.5}
    lit = module("Masking", noise=1.0, variant=sparse)  # codes of the masked input are all 0
    assert lit.training_step((x, y), 0).item() == pytest.approx(x.pow(2).mean().item())
    lit = module(variant=sparse)  # reconstruction perfect: only the penalty is left
    assert lit.training_step((x, y), 0).item() == pytest.approx(0.5 * x.abs().mean().item())


def test_the_optimizer_comes_from_its_config():
    lit = LitAutoencoder(
        net={"_target_": "autoencoder.models.networks.MLPAutoencoder", "latent_dim": 2, "hidden": [8]},
        corruption={"_target_": "autoencoder.models.corruption.Gaussian"},
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    )
    optimizer = lit.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.1
    assert optimizer.param_groups[0]["params"] == list(lit.parameters())


def test_hyperparameters_are_plain_values():
    hparams = module().hparams
    assert hparams["net"] == {"_target_": f"{__name__}.Identity"} and type(hparams["corruption"]) is dict


def test_load_from_checkpoint_needs_no_other_argument(trained_checkpoint):
    lit = LitAutoencoder.load_from_checkpoint(trained_checkpoint, map_location="cpu", weights_only=True)
    saved = torch.load(trained_checkpoint, weights_only=True)["state_dict"]
    assert lit.device.type == "cpu" and lit.net.latent_dim == 2 and lit.corruption.noise == 0.2
    assert all(torch.equal(lit.state_dict()[k], v) for k, v in saved.items())
