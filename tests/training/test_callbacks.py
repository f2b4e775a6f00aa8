from types import SimpleNamespace

import torch
from torch.utils.data import TensorDataset

from autoencoder.evaluation.figures import latent_scatter
from autoencoder.training.callbacks import ValidationImages, _hms


def test_fixed_images_are_one_per_digit_and_stable(tmp_path):
    labels = torch.tensor([3, 3, 1, 0, 2, 9, 8, 7, 6, 5, 4, 1, 0])
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(val_set=TensorDataset(images, labels)))
    callback = ValidationImages(tmp_path)
    picked = callback._fixed_images(trainer)[:, 0, 0, 0].long()
    assert labels[picked].tolist() == list(range(10))  # digits 0..9, first of each
    assert picked.tolist() == [3, 2, 4, 0, 10, 9, 8, 7, 6, 5]
    assert callback._fixed_images(trainer) is callback._fixed_images(trainer)


def test_fixed_images_topped_up_when_digits_are_missing(tmp_path):
    labels = torch.tensor([1, 1, 1, 2])
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(val_set=TensorDataset(images, labels)))
    assert len(ValidationImages(tmp_path, num_images=3)._fixed_images(trainer)) == 3


def test_latent_scatter(tmp_path):
    figure = latent_scatter(torch.randn(100, 2), torch.arange(100) % 10, "test latent space, PCA", ("PC 1", "PC 2"))
    figure.savefig(tmp_path / "latent.png")
    assert (tmp_path / "latent.png").stat().st_size > 1000
    ax = figure.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("test latent space, PCA", "PC 1", "PC 2")


def test_hms():
    assert _hms(3725.9) == "01:02:05"
