import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from autoencoder.config.validation import validate
from autoencoder.models.module import LitAutoencoder
from autoencoder.models.networks import Autoencoder
from autoencoder.utils.errors import UserError

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


def rotation_module(weight: float) -> LitAutoencoder:
    """The identity network on 2x2 images, trained to undo rotations, its head's logits fixed at
    log(1, 2, 3, 4): p(transformation k) = (k + 1) / 10 for every image."""
    lit = LitAutoencoder(
        net={"_target_": f"{__name__}.Identity", "side": 2},
        corruption={"_target_": "autoencoder.models.corruption.Rotation"},
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        transform_head_weight=weight,
    )
    if lit.transform_head is not None:
        with torch.no_grad():
            lit.transform_head.weight.zero_()
            lit.transform_head.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]).log())
    return lit


def test_the_transformation_heads_loss_by_hand():
    x = torch.rand(6, 1, 2, 2)
    lit = rotation_module(weight=0.5)
    index = torch.randint(4, (6,), generator=torch.Generator().manual_seed(lit.hparams.eval_noise_seed + 3))  # validation batch 3's draws
    rotated = torch.stack([torch.rot90(image, int(k), dims=(-2, -1)) for image, k in zip(x, index, strict=True)])
    reconstruction = (rotated - x).pow(2).mean()  # the identity network returns its rotated input
    head = -((index + 1) / 10).log().mean()
    assert lit.validation_step((x, None), 3).item() == pytest.approx((reconstruction + 0.5 * head).item(), rel=1e-5)
    assert rotation_module(weight=0).validation_step((x, None), 3).item() == pytest.approx(reconstruction.item(), rel=1e-5)


@pytest.mark.parametrize(
    "corruption, message",
    [
        ({"_target_": "autoencoder.models.corruption.Gaussian", "noise": 0.1}, "it needs a transformation corruption"),
        ({"_target_": "autoencoder.models.corruption.Rotation", "degrees": [90]}, "it needs a set of at least two to tell apart"),
    ],
)
def test_the_head_needs_transformations_to_tell_apart(corruption, message):
    with pytest.raises(UserError, match=f"module.transform_head_weight > 0 predicts the transformation: {message}"):
        LitAutoencoder(
            net={"_target_": f"{__name__}.Identity"},
            corruption=corruption,
            optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
            transform_head_weight=1.0,
        )


@pytest.mark.parametrize("variant", ["ae", "sparse", "contractive", "vae"])
@pytest.mark.parametrize("data, corruption", [("mnist", "chain"), ("cifar10", "chain"), ("mnist", "translation")])
def test_every_variant_and_dataset_trains_on_transformations_with_the_head(make_cfg, variant, data, corruption):
    steps = "[{_target_:autoencoder.models.corruption.Grayscale},{_target_:autoencoder.models.corruption.Flip}]"  # colour, then left-right
    overrides = [f"variant={variant}", f"data={data}", f"corruption={corruption}", "module.transform_head_weight=0.1", "model=mlp", "model.hidden=[16]"]
    cfg = make_cfg(*overrides, *([f"corruption.steps={steps}"] if data == "cifar10" else []))
    validate(cfg)
    lit = instantiate(cfg.module)
    x = torch.rand(4, *cfg.data.image_shape)
    loss = lit.training_step((x, None), 0)
    loss.backward()
    assert torch.isfinite(loss) and lit.transform_head.weight.grad.abs().sum() > 0
