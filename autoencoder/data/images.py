"""The data module: a LightningDataModule over a dataset's labelled images held in memory as uint8
tensors, or read from a uint8 cache file when they do not fit (the dataset,
autoencoder.data.dataset.ImageDataset, says where they come from, and which).

The dataset's YAML also sets `image_shape` (C, H, W), which the model's `input_shape` follows, so a
network is built for the data without being told; `setup` checks the images have that shape.

The `train` split is divided into train and val by a seeded permutation (`val_size`: a number of
images, or a fraction of them; `split_seed`); `classes` keeps only those labels in train and val
(one-class training), `train_size` only the first images of the seeded train part. The test split
is always whole and is only used for testing. Batches are one indexing op on the tensors with a
slice of a seeded permutation (`ShuffledBatches`); on a GPU the tensors live in its memory. Mapped
images are gathered batch by batch from the file on the CPU (`GatheredImages`), by the same index
batches, so the order, a resumed run's and each DDP process's share are those of the images held. Every
consumer receives floats in [0, 1] on the training device, made by `to_unit_range`: from the
loaders through `on_after_batch_transfer`, or from `split(name)` outside a Trainer.

`binarize` gives the binary images likelihood figures are reported on (MNIST's usual protocol):
each training batch is drawn afresh, pixel by pixel, from Bernoulli distributions with the grey
levels as means (dynamic binarisation), while val, test and `split("train")` are drawn once with a
generator seeded by `split_seed`, so every evaluation sees the same binary images.
"""

import logging

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from autoencoder.data.batches import GatheredImages, ResumableLoader, ShuffledBatches
from autoencoder.data.cache import CachedImages
from autoencoder.data.dataset import ImageDataset
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


def class_names(datamodule: "ImageDataModule", labels: torch.Tensor) -> list[str]:
    """The dataset's class names, or the labels as text for one that names none."""
    return list(datamodule.dataset.class_names) or [str(c) for c in range(int(labels.max()) + 1)]


class ImageDataModule(L.LightningDataModule):
    """Train/val/test loaders over the images of `dataset`, split and batched as its settings say."""

    def __init__(self, dataset: ImageDataset):
        super().__init__()
        self.dataset = dataset
        self.train_set = self.val_set = self.test_set = None
        self.device = torch.device("cpu")

    @override
    def prepare_data(self) -> None:
        self.dataset.prepare()

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        data = self.dataset
        images, labels = data.load("train")
        if data.image_shape is not None and tuple(images.shape[1:]) != data.image_shape:
            found = f"{data.name}'s images are {list(images.shape[1:])}"
            raise UserError(f"data.image_shape is {list(data.image_shape)} but {found}; leave data.image_shape as the dataset sets it")
        # An integer is a number of images, a float in (0, 1) a fraction of them (at least one).
        val_size = data.val_size if isinstance(data.val_size, int) else max(1, round(data.val_size * len(images)))
        if val_size >= len(images):
            raise UserError(f"data.val_size must be smaller than the {len(images)} training images, got {data.val_size}")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(data.split_seed))
        train_idx, val_idx = order[val_size:], order[:val_size]
        if data.classes is not None:  # one-class training: train and val keep only these labels
            keep = torch.isin(labels, torch.tensor(data.classes))
            train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
            if not len(train_idx) or not len(val_idx):
                raise UserError(
                    f"data.classes={data.classes} leaves {len(train_idx)} training and {len(val_idx)} validation images; pick classes present in the data"
                )
        if data.train_size is not None:
            if data.train_size > len(train_idx):
                raise UserError(f"data.train_size must be at most the {len(train_idx)} training images, got {data.train_size}")
            train_idx = train_idx[: data.train_size]
        self.train_index, self.val_index = train_idx, val_idx  # positions in the dataset's own train split
        test_images, test_labels = data.load("test")
        if isinstance(images, CachedImages):
            self._gather_from(images, labels, test_images, test_labels)
        else:
            self._hold(images, labels, test_images, test_labels)
        only = f" of classes {data.classes}" if data.classes is not None else ""
        log.info("%s: %d train, %d val%s, %d test images", data.name, len(self.train_set), len(self.val_set), only, len(self.test_set))

    def _hold(self, images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor) -> None:
        """The three sets as tensors in memory: on a GPU the whole set lives in its memory, and
        batches are then gathered there, with no copy."""
        val_images = images[self.val_index]
        if self.dataset.binarize:  # once, seeded: the same binary images at every evaluation
            generator = torch.Generator().manual_seed(self.dataset.split_seed)
            val_images, test_images = binarized(val_images, generator), binarized(test_images, generator)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.device = device if device.type == "cuda" else torch.device("cpu")
        self.train_set, self.val_set, self.test_set = (
            TensorDataset(*(t.to(self.device) for t in tensors))
            for tensors in ((images[self.train_index], labels[self.train_index]), (val_images, labels[self.val_index]), (test_images, test_labels))
        )

    def _gather_from(self, images: CachedImages, labels: torch.Tensor, test_images: CachedImages, test_labels: torch.Tensor) -> None:
        """The three sets as positions in the cached images, gathered on the CPU batch by batch.
        Binarised val and test images are drawn once, as `_hold` draws them, and held in memory."""
        self.device = torch.device("cpu")
        self.train_set = GatheredImages(images, labels, self.train_index)
        self.val_set = GatheredImages(images, labels, self.val_index)
        self.test_set = GatheredImages(test_images, test_labels, torch.arange(len(test_images)))
        if self.dataset.binarize:
            generator = torch.Generator().manual_seed(self.dataset.split_seed)
            self.val_set, self.test_set = (TensorDataset(binarized(held[0], generator), held[1]) for held in (self.val_set.tensors, self.test_set.tensors))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as floats in [0, 1] (N, C, H, W) and labels of the `train`, `val` or `test` split,
        on the CPU: for consumers outside a Trainer (evaluate, encode, anomaly, benchmarks)."""
        if name not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        self.prepare_data()
        self.setup()
        images, labels = getattr(self, f"{name}_set").tensors
        if self.dataset.binarize and name == "train":
            images = binarized(images.cpu(), torch.Generator().manual_seed(self.dataset.split_seed))
        return to_unit_range(images.cpu()), labels.cpu()

    @override
    def on_after_batch_transfer(self, batch: list[torch.Tensor] | torch.Tensor, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        if isinstance(batch, torch.Tensor):  # images alone: the model summary's example input
            return to_unit_range(batch)
        images, labels = batch
        if self.dataset.binarize and self.trainer is not None and self.trainer.training:
            return to_unit_range(binarized(images)), labels  # a new draw at every step
        return to_unit_range(images), labels

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        # batch_size=None: the sampler yields whole index batches and `dataset[batch]` gathers them.
        # The loader's own generator: starting an epoch then draws nothing from torch's global RNG,
        # whose state (the training noise) a checkpoint restores.
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        batches = ShuffledBatches(len(dataset), self.dataset.batch_size, shuffle, self.dataset.shuffle_seed, self.device, rank, world_size)
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


def data_module(data: DictConfig) -> ImageDataModule:
    """The data module of a data config (conf/data/<name>.yaml)."""
    return ImageDataModule(instantiate(data, _convert_="all"))
