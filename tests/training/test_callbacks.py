from types import SimpleNamespace

import matplotlib
import torch
from torchvision.io import read_image

from autoencoder.training.callbacks import ValidationImages
from autoencoder.utils.figures import latent_scatter
from tests.models.test_module import module


def grid_rows(png, n: int, side: int) -> torch.Tensor:
    """The (3, n, side, side) images of a reconstructions.png (rows clean / noisy / reconstructed,
    2 px padding, drawn 3x larger), back as floats in [0, 1]."""
    pixels = read_image(str(png))[0, ::3, ::3].float() / 255  # one channel of the grey grid, 1x
    step = side + 2
    return torch.stack([torch.stack([pixels[2 + r * step : 2 + r * step + side, 2 + i * step : 2 + i * step + side] for i in range(n)]) for r in range(3)])


def validate(callback: ValidationImages, lit, batches, epoch: int = 0) -> None:
    """One validation as Lightning runs it, through the callback's hooks."""
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, loggers=[], global_step=0, current_epoch=epoch)
    callback.on_validation_epoch_start(trainer, lit)
    for i, batch in enumerate(batches):
        callback.on_validation_batch_end(trainer, lit, None, batch, i)
    callback.on_validation_epoch_end(trainer, lit)


def shades(values) -> torch.Tensor:
    """4x4 images, each a flat shade k/20 (a PNG keeps them to within 1/255)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 4, 4) / 20


def test_the_grid_shows_the_first_image_of_each_class_and_keeps_them(tmp_path):
    labels = torch.tensor([3, 3, 1, 0, 2, 9, 8, 7, 6, 5, 4, 1, 0])
    images = shades(range(len(labels)))
    callback, lit = ValidationImages(tmp_path), module()  # identity network, no noise
    validate(callback, lit, [(images[:5], labels[:5]), (images[5:], labels[5:])])
    rows = grid_rows(tmp_path / "reconstructions.png", 10, 4)
    first_of_each_class = [3, 2, 4, 0, 10, 9, 8, 7, 6, 5]  # positions of classes 0..9
    assert torch.allclose(rows[0], images[first_of_each_class, 0], atol=1 / 255)
    assert torch.allclose(rows[2], rows[0], atol=1 / 255)  # the identity reconstructs them
    validate(callback, lit, [(images.flip(0), labels.flip(0))], epoch=1)  # a later validation: same images
    assert torch.allclose(grid_rows(tmp_path / "reconstructions.png", 10, 4)[0], images[first_of_each_class, 0], atol=1 / 255)


def test_the_grid_is_topped_up_when_classes_are_missing(tmp_path):
    images, labels = shades([1, 2, 3, 4]), torch.tensor([1, 1, 1, 2])
    validate(ValidationImages(tmp_path, num_images=3), module(), [(images, labels)])
    assert torch.allclose(grid_rows(tmp_path / "reconstructions.png", 3, 4)[0], images[[0, 3, 1], 0], atol=1 / 255)


def test_latent_scatter_draws_without_pyplot_and_names_the_classes(tmp_path):
    backend = matplotlib.get_backend()
    codes, labels = torch.randn(100, 2), torch.arange(100) % 3
    figure = latent_scatter(codes, labels, "test latent space, PCA", ("cat", "dog", "ship"), ("PC 1", "PC 2"))
    ax, bar = figure.axes
    assert [t.get_text() for t in bar.get_yticklabels()] == ["cat", "dog", "ship"]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("test latent space, PCA", "PC 1", "PC 2")
    assert torch.allclose(torch.from_numpy(ax.collections[0].get_offsets().data).float(), codes)
    assert matplotlib.get_backend() == backend
