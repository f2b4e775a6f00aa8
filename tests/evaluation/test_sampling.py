import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.mixture import GaussianMixture
from autoencoder.evaluation.sampling import code_mixture, fit_subset, interpolation, prior_images, prior_source, sample
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from autoencoder.training.callbacks import PriorSamples
from autoencoder.utils.errors import UserError
from tests.conftest import compose_entry, train_briefly

SMALL = ["num_samples=10", "pairs=3", "steps=4", "batch_size=16"]


def grid_size(columns: int, rows: int, side: int = 28, padding: int = 2) -> tuple[int, int]:
    """(width, height) of a torchvision grid of side x side images with its default padding."""
    return columns * (side + padding) + padding, rows * (side + padding) + padding


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory, fake_mnist) -> Path:
    """A latent-4 VAE trained for a few batches on the fake data, with TensorBoard."""
    return train_briefly(fake_mnist, tmp_path_factory.mktemp("vae"), "variant=vae", "model.latent_dim=4", "logger=tensorboard")


def run_sample(ckpt: Path, out: Path, data_dir: Path, *overrides: str) -> dict:
    return sample(compose_entry("sample", out, f"ckpt_path={ckpt}", *SMALL, *overrides), {"data_dir": str(data_dir)})


def test_sample_a_vae_writes_the_prior_the_interpolation_and_tensorboard(vae_checkpoint, fake_mnist, tmp_path):
    result = run_sample(vae_checkpoint, tmp_path, fake_mnist)
    assert json.loads((tmp_path / "sample.json").read_text()) == result
    assert result["variant"] == "Variational" and result["prior"] == "model" and result["files"] == ["prior.png", "interpolation.png"]
    mixture = {"components": 10, "covariance": "full", "fit_size": 10000}
    assert result["settings"] == {"num_samples": 10, "pairs": 3, "steps": 4, "split": "test", "seed": 0, "source": "auto", **mixture}
    positions = sum(result["pair_positions"], [])
    assert len(positions) == 6 and len(set(positions)) == 6 and all(0 <= p < 60 for p in positions)
    assert Image.open(tmp_path / "prior.png").size == grid_size(4, 3)  # 10 images, 4 to a row
    assert Image.open(tmp_path / "interpolation.png").size == grid_size(4 + 2, 3)  # a row per pair: A, 4 steps, B
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["images"]) == {"sample/prior", "sample/interpolation"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_sample_a_plain_autoencoder_draws_from_a_mixture_fitted_to_its_training_codes(trained_checkpoint, fake_mnist, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="autoencoder.evaluation.sampling")
    result = run_sample(trained_checkpoint, tmp_path, fake_mnist, "split=val", "pairs=2", "components=3", "covariance=diag")
    assert result["variant"] == "Plain" and result["prior"] == "mixture" and result["files"] == ["prior.png", "interpolation.png"]
    assert Image.open(tmp_path / "prior.png").size == grid_size(4, 3)
    assert Image.open(tmp_path / "interpolation.png").size == grid_size(6, 2)
    assert "a mixture of 3 Gaussians (diag covariance) fitted to at most 10000 of the Plain variant's training codes" in caplog.text


def test_prior_images_of_a_model_without_a_prior_come_from_the_mixture_it_is_given(trained_checkpoint, fake_mnist):
    run_cfg, module = load_trained(trained_checkpoint)
    with pytest.raises(UserError, match="^the Plain variant has no prior to sample from"):
        prior_images(module, 4, seed=0)
    mixture = code_mixture(module, datamodule_for(run_cfg, {"data_dir": str(fake_mnist)}).split("train")[0], components=2)
    first, again = (prior_images(module, 4, 0, 3, mixture) for _ in range(2))
    assert first.shape == (4, 1, 28, 28) and torch.equal(first, again)
    with torch.no_grad():
        torch.testing.assert_close(first, module.decode(mixture.sample(4, torch.Generator().manual_seed(0))))


def test_the_mixture_is_fitted_to_a_seeded_subset_of_the_training_codes_or_all_of_them(trained_checkpoint, fake_mnist):
    run_cfg, module = load_trained(trained_checkpoint)
    images = datamodule_for(run_cfg, {"data_dir": str(fake_mnist)}).split("train")[0]  # 250 images
    first, again, other = (fit_subset(images, 40, seed) for seed in (0, 0, 1))
    assert first.shape == (40, 1, 28, 28) and torch.equal(first, again) and not torch.equal(first, other)
    index = (first[:, 0, 0, 1] * 255).round() * 256 + (first[:, 0, 0, 2] * 255).round()  # each fake image's own index
    assert len(set(index.tolist())) == 40  # drawn without replacement
    assert all(fit_subset(images, size, 0) is images for size in (None, len(images), 10**6))
    fitted = code_mixture(module, images, components=2, seed=0, batch_size=64, fit_size=40)
    expected = GaussianMixture.fit(in_batches(module.encode, first, 64), components=2, seed=0)
    assert torch.equal(fitted.means, expected.means) and torch.equal(fitted.weights, expected.weights)
    whole, larger = (code_mixture(module, images, components=2, seed=0, batch_size=64, fit_size=size) for size in (None, 10**6))
    assert torch.equal(whole.means, larger.means) and not torch.equal(whole.means, fitted.means)


@pytest.mark.parametrize(
    "setting, has_prior, source", [("auto", True, "model"), ("auto", False, "mixture"), ("mixture", True, "mixture"), ("model", True, "model")]
)
def test_the_source_setting_picks_the_models_own_prior_or_the_mixture(setting, has_prior, source):
    module = SimpleNamespace(variant=SimpleNamespace(has_prior=has_prior, mixture_prior=True))
    assert prior_source(setting, module) == source


def test_asking_a_model_without_a_prior_for_its_own_is_refused():
    module = SimpleNamespace(variant=type("Sparse", (), {"has_prior": False, "mixture_prior": True})())
    with pytest.raises(UserError, match="^source=model: the Sparse variant has no prior of its own"):
        prior_source("model", module)


@pytest.mark.parametrize("setting", ["auto", "model"])
def test_a_vqvae_without_its_code_prior_is_told_to_train_one(setting):
    module = SimpleNamespace(variant=type("VQVAE", (), {"has_prior": False, "mixture_prior": False})())
    with pytest.raises(UserError, match=f"^source={setting}: this VQVAE has no prior over its codes yet; train one with python -m autoencoder.code_prior"):
        prior_source(setting, module)
    assert prior_source("mixture", module) == "mixture"


def test_interpolation_rows_run_from_one_image_through_the_decoded_codes_to_the_other(vae_checkpoint, fake_mnist):
    run_cfg, module = load_trained(vae_checkpoint)
    images, _ = datamodule_for(run_cfg, {"data_dir": str(fake_mnist)}).split("test")
    first, second = images[:3], images[3:6]
    rows = interpolation(module, first, second, steps=5, batch_size=4)  # batches that cut across rows
    assert rows.shape == (3, 7, 1, 28, 28)
    assert torch.equal(rows[:, 0], first) and torch.equal(rows[:, -1], second)
    with torch.no_grad():
        start, end = module.encode(first), module.encode(second)
        torch.testing.assert_close(rows[:, 1], module.decode(start), atol=1e-5, rtol=0)
        torch.testing.assert_close(rows[:, -2], module.decode(end), atol=1e-5, rtol=0)
        torch.testing.assert_close(rows[:, 3], module.decode((start + end) / 2), atol=1e-5, rtol=0)
    assert not torch.allclose(rows[:, 1], rows[:, -2])


def test_the_seed_repeats_a_sample_and_another_seed_changes_it(vae_checkpoint, fake_mnist, tmp_path):
    runs = {name: run_sample(vae_checkpoint, tmp_path / name, fake_mnist, f"seed={seed}") for name, seed in (("a", 1), ("b", 1), ("c", 2))}
    for png in ("prior.png", "interpolation.png"):
        assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
        assert (tmp_path / "a" / png).read_bytes() != (tmp_path / "c" / png).read_bytes()
    assert runs["a"]["pair_positions"] == runs["b"]["pair_positions"] != runs["c"]["pair_positions"]


def test_training_a_vae_logs_prior_samples_at_each_validation(vae_checkpoint):
    events = EventAccumulator(str(vae_checkpoint.parent.parent / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    (logged,) = events.Images("val/prior_samples")  # one validation in the run
    assert (logged.width, logged.height) == grid_size(8, 8)


class RecordingLogger(TensorBoardLogger):
    """A TensorBoard logger that keeps the images it is given instead of writing event files."""

    def __init__(self, save_dir: Path) -> None:
        super().__init__(save_dir)
        self.images: list[tuple[str, torch.Tensor, int]] = []

    @property
    def experiment(self):
        return SimpleNamespace(add_image=lambda tag, image, step: self.images.append((tag, image, step)))


def validation_end(callback: PriorSamples, module, logger: RecordingLogger, step: int, sanity_checking: bool = False, is_global_zero: bool = True) -> None:
    trainer = SimpleNamespace(sanity_checking=sanity_checking, is_global_zero=is_global_zero, loggers=[logger], global_step=step)
    callback.on_validation_epoch_end(trainer, module)


def test_prior_samples_decode_the_same_codes_every_epoch_on_rank_zero_only(vae_checkpoint, tmp_path):
    module, logger, callback = load_trained(vae_checkpoint)[1], RecordingLogger(tmp_path), PriorSamples(num_images=6, seed=3)
    validation_end(callback, module, logger, step=0, sanity_checking=True)
    validation_end(callback, module, logger, step=0, is_global_zero=False)
    assert logger.images == []
    validation_end(callback, module, logger, step=5)
    validation_end(callback, module, logger, step=10)
    (tag, first, step), (_, second, _) = logger.images
    assert tag == "val/prior_samples" and step == 5 and first.shape == (3, *grid_size(3, 2)[::-1])
    assert torch.equal(first, second)  # unchanged weights, unchanged codes


def test_prior_samples_log_nothing_for_a_plain_autoencoder(trained_checkpoint, tmp_path):
    logger = RecordingLogger(tmp_path)
    validation_end(PriorSamples(), load_trained(trained_checkpoint)[1], logger, step=5)
    assert logger.images == []
