"""The data contract: a LightningDataModule over labelled images held in memory as uint8 tensors.

A dataset is a subclass that provides two methods (and one YAML in conf/data/):

- `prepare_data()`: make the files available (download them, or raise a UserError saying where
  to put them); Lightning calls it once per machine;
- `load(split)`: images (N, C, H, W) uint8 and labels (N,) int64 of the dataset's own `train` or
  `test` split, read from those files and checked.

The dataset's YAML also sets `image_shape` (C, H, W), which the model's `input_shape` follows, so a
network is built for the data without being told; `setup` checks the images have that shape.

Everything else is shared. The `train` split is divided into train and val by a seeded permutation
(`val_size`: a number of images, or a fraction of them; `split_seed`); `classes` keeps only those
labels in train and val (one-class training), `train_size` only the first images of the seeded
train part. The test split is always whole and is only used for testing. Batches are one
indexing op on the tensors with a slice of a seeded permutation (`ShuffledBatches`); on a GPU the
tensors live in its memory. Every consumer receives floats in [0, 1] on the training device, made
by `to_unit_range`: from the loaders through `on_after_batch_transfer`, or from `split(name)`
outside a Trainer.

`binarize` gives the binary images likelihood figures are reported on (MNIST's usual protocol):
each training batch is drawn afresh, pixel by pixel, from Bernoulli distributions with the grey
levels as means (dynamic binarisation), while val, test and `split("train")` are drawn once with a
generator seeded by `split_seed`, so every evaluation sees the same binary images.
"""

import logging
from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from autoencoder.data.batches import ResumableLoader, ShuffledBatches
from autoencoder.utils.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0-255) as floats in [0, 1]: the one place the conversion is written. Float
    images are taken to be converted already."""
    return images if images.is_floating_point() else images.float().div_(255)


def binarized(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each pixel 1 with probability its grey level (0 otherwise), as uint8 0/255 for uint8 input."""
    draws = torch.bernoulli(to_unit_range(images), generator=generator)
    return draws.to(torch.uint8).mul_(255) if not images.is_floating_point() else draws


def class_names(datamodule: L.LightningDataModule, labels: torch.Tensor) -> list[str]:
    """The data module's class names, or the labels as text for one that names none."""
    return list(getattr(datamodule, "class_names", ())) or [str(c) for c in range(int(labels.max()) + 1)]


def _key(name: str) -> str:
    """A class name as the user may type it: `Ankle boot`, `ankle_boot` and `ankleboot` are one."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


class ImageDataModule(L.LightningDataModule):
    """Train/val/test loaders over uint8 images in memory; subclasses provide the files and the
    class names, label by label (`classes` may name a class or give its label)."""

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        batch_size: int = 128,
        val_size: int | float = 5000,
        train_size: int | None = None,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        classes: Sequence[int | str] | None = None,
        image_shape: Sequence[int] | None = None,
        binarize: bool = False,
    ):
        super().__init__()
        self.binarize = binarize
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_size = train_size
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.classes = sorted(self.labels_of(classes)) if classes is not None else None
        self.train_set = self.val_set = self.test_set = None
        self.device = torch.device("cpu")

    def labels_of(self, classes: Sequence[int | str], key: str = "data.classes") -> list[int]:
        """The labels of classes given by name or label; anything else is a UserError (on the
        setting `key`) listing them."""
        keys = {_key(name): label for label, name in enumerate(self.class_names)}
        labels = []
        for c in classes:
            label = c if isinstance(c, int) and not isinstance(c, bool) else keys.get(_key(c)) if isinstance(c, str) else None
            if label is None or not 0 <= label < (len(self.class_names) or label + 1):
                names = ", ".join(name if name == str(i) else f"{i} {name}" for i, name in enumerate(self.class_names))
                raise UserError(f"{key}: {c!r} is not a class of {type(self).__name__} (its classes: {names}; give names or labels)")
            labels.append(label)
        return labels

    def load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) uint8 and labels (N,) int64 of the dataset's `train` or `test` split."""
        raise NotImplementedError

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = self.load("train")
        if self.image_shape is not None and tuple(images.shape[1:]) != self.image_shape:
            found = f"{type(self).__name__}'s images are {list(images.shape[1:])}"
            raise UserError(f"data.image_shape is {list(self.image_shape)} but {found}; leave data.image_shape as the dataset sets it")
        # An integer is a number of images, a float in (0, 1) a fraction of them (at least one).
        val_size = self.val_size if isinstance(self.val_size, int) else max(1, round(self.val_size * len(images)))
        if val_size >= len(images):
            raise UserError(f"data.val_size must be smaller than the {len(images)} training images, got {self.val_size}")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        train_idx, val_idx = order[val_size:], order[:val_size]
        if self.classes is not None:  # one-class training: train and val keep only these labels
            keep = torch.isin(labels, torch.tensor(self.classes))
            train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
            if not len(train_idx) or not len(val_idx):
                raise UserError(
                    f"data.classes={self.classes} leaves {len(train_idx)} training and {len(val_idx)} validation images; pick classes present in the data"
                )
        if self.train_size is not None:
            if self.train_size > len(train_idx):
                raise UserError(f"data.train_size must be at most the {len(train_idx)} training images, got {self.train_size}")
            train_idx = train_idx[: self.train_size]
        self.train_index, self.val_index = train_idx, val_idx  # positions in the dataset's own train split
        test_images, test_labels = self.load("test")
        val_images = images[val_idx]
        if self.binarize:  # once, seeded: the same binary images at every evaluation
            generator = torch.Generator().manual_seed(self.split_seed)
            val_images, test_images = binarized(val_images, generator), binarized(test_images, generator)
        # On a GPU the whole set lives in its memory: batches are then gathered there, with no copy.
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.device = device if device.type == "cuda" else torch.device("cpu")
        self.train_set, self.val_set, self.test_set = (
            TensorDataset(*(t.to(self.device) for t in tensors))
            for tensors in ((images[train_idx], labels[train_idx]), (val_images, labels[val_idx]), (test_images, test_labels))
        )
        only = f" of classes {self.classes}" if self.classes is not None else ""
        log.info("%s: %d train, %d val%s, %d test images", type(self).__name__, len(self.train_set), len(self.val_set), only, len(self.test_set))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as floats in [0, 1] (N, C, H, W) and labels of the `train`, `val` or `test` split,
        on the CPU: for consumers outside a Trainer (evaluate, encode, anomaly, benchmarks)."""
        if name not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        self.prepare_data()
        self.setup()
        images, labels = getattr(self, f"{name}_set").tensors
        if self.binarize and name == "train":
            images = binarized(images.cpu(), torch.Generator().manual_seed(self.split_seed))
        return to_unit_range(images.cpu()), labels.cpu()

    @override
    def on_after_batch_transfer(self, batch: list[torch.Tensor] | torch.Tensor, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        if isinstance(batch, torch.Tensor):  # images alone: the model summary's example input
            return to_unit_range(batch)
        images, labels = batch
        if self.binarize and self.trainer is not None and self.trainer.training:
            return to_unit_range(binarized(images)), labels  # a new draw at every step
        return to_unit_range(images), labels

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        # batch_size=None: the sampler yields whole index batches and `dataset[batch]` gathers them.
        # The loader's own generator: starting an epoch then draws nothing from torch's global RNG,
        # whose state (the training noise) a checkpoint restores.
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        batches = ShuffledBatches(len(dataset), self.batch_size, shuffle, self.shuffle_seed, self.device, rank, world_size)
        return ResumableLoader(dataset, batch_size=None, sampler=batches, generator=torch.Generator())

    @override
    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    @override
    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
