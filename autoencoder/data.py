"""MNIST as a LightningDataModule.

The four official IDX files are read from `<data_dir>/MNIST/raw/` (torchvision's layout), checked
(header, size and, for the official files, md5) and decoded once into uint8 tensors (47 MB for
the 60k training images, moved to the GPU when training on one). A batch is one indexing op on
those tensors with a slice of a seeded permutation, turned into floats in [0, 1] on the training
device: no per-sample Dataset, PIL image, ToTensor or worker process in the loop. When the files
are missing, torchvision downloads them; with no network the run stops with one line saying where to
put them. The official 60k training set is split into train/val by a seeded permutation; the 10k
test set stays apart and is only used for testing.
"""

import hashlib
import logging
import math
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from autoencoder import REPO_DIR
from autoencoder.errors import UserError, as_list, distinct_ints

log = logging.getLogger(__name__)

# md5 of the official files after gunzip (the .gz md5s are checked by torchvision on download).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DATA_ENV = "AUTOENCODER_DATA_DIR"


def read_idx(path: Path, md5: str | None = None) -> torch.Tensor:
    """Decode an unsigned-byte IDX file (the MNIST format) into a uint8 tensor, checking its header
    and, when given, its md5."""
    raw = bytearray(path.stat().st_size)  # read once into a buffer the tensor then shares: no copies
    with path.open("rb") as file:
        file.readinto(raw)
    if md5 is not None and (digest := hashlib.md5(raw).hexdigest()) != md5:
        raise UserError(f"{path} fails its md5 check ({digest}, expected {md5}): the file is corrupt; delete it to download again or replace it")
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise UserError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex() or 'empty'}); replace it with the official MNIST file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated inside its header; replace it with the official MNIST file")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(torch.Size(shape).numel())
    if len(raw) != expected:
        raise UserError(f"{path} holds {len(raw)} bytes but its header {list(shape)} needs {expected}; the file is truncated or corrupt")
    if expected == header:  # no items (frombuffer refuses an empty view)
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(raw, dtype=torch.uint8, offset=header).reshape(shape)


def load_split(raw_dir: Path, split: str, check_md5: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of the official `train` or `test` split."""
    paths = [raw_dir / name for name in SPLIT_FILES[split]]
    images, labels = (read_idx(p, OFFICIAL_MD5[p.name] if check_md5 else None) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{paths[0]} and {paths[1]} do not match: images {list(images.shape)}, labels {list(labels.shape)}")
    return images.unsqueeze(1), labels.long()


def _check_classes(classes: Sequence[int] | None) -> list[int] | None:
    """None keeps every digit; otherwise a non-empty list of distinct digits 0-9."""
    if classes is None:
        return None
    digits = distinct_ints(classes, range(10))
    if digits is None:
        raise UserError(f"data.classes must be null (all digits) or a non-empty list of distinct digits 0-9, got {as_list(classes)!r}")
    return sorted(digits)


class ShuffledBatches(Sampler[torch.Tensor]):
    """Index batches over `n` items: slices of a permutation seeded by `seed + epoch` (Lightning
    calls `set_epoch` before each epoch, so a resumed run sees the same order), or of 0..n-1 when
    `shuffle` is off. Every item comes once per epoch; the last batch may be short.

    Under DDP, process `rank` of `world_size` takes every world_size-th batch. All processes must
    take the same number of steps, so when the batches do not divide evenly the last processes
    wrap around to the first batches (as torch's DistributedSampler pads)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.shuffle, self.seed, self.device = n, batch_size, shuffle, seed, device
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n / self.batch_size) / self.world_size)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        batches = order.to(self.device).split(self.batch_size)  # one copy per epoch, none per batch
        for i in range(self.rank, len(self) * self.world_size, self.world_size):
            yield batches[i % len(batches)]


class MNISTDataModule(L.LightningDataModule):
    """MNIST train/val/test loaders over uint8 tensors held in memory. `classes` keeps only those
    digits in train and val (one-class anomaly detection), `train_size` only that many training
    images (a subset for quick studies); the test set always has all ten digits. The training
    order is reshuffled every epoch from `shuffle_seed`."""

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 128,
        val_size: int = 5000,
        train_size: int | None = None,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        download: bool = True,
        check_md5: bool = True,
        classes: Sequence[int] | None = None,
    ):
        super().__init__()
        for name, value in (("batch_size", batch_size), ("val_size", val_size), ("train_size", 1 if train_size is None else train_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"data.{name} must be an integer >= 1{' or null (all)' if name == 'train_size' else ''}, got {value!r}")
        self.data_dir = Path(data_dir).expanduser() if data_dir else REPO_DIR / "data"
        self.raw_dir = self.data_dir / "MNIST" / "raw"
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_size = train_size
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.download = download
        self.check_md5 = check_md5
        self.classes = _check_classes(classes)
        self.train_set = self.val_set = self.test_set = None

    def _missing(self) -> list[str]:
        return [name for name in OFFICIAL_MD5 if not (self.raw_dir / name).is_file()]

    def prepare_data(self) -> None:
        missing = self._missing()
        if not missing:
            return
        where = f"put the four MNIST files ({', '.join(OFFICIAL_MD5)}) in {self.raw_dir} or set {DATA_ENV} to a folder holding MNIST/raw/"
        if not self.download:
            raise UserError(f"MNIST files missing from {self.raw_dir}: {', '.join(missing)}; {where}")
        log.info("MNIST files missing from %s; downloading them with torchvision", self.raw_dir)
        from torchvision.datasets import MNIST

        try:
            MNIST(str(self.data_dir), train=True, download=True)
        except Exception as exc:  # noqa: BLE001 - any network or disk failure means the same to the user
            text = " ".join(str(exc).split())
            found = re.search(r"<urlopen error ([^>]*)>", text)
            reason = found.group(1) if found else text[:160]
            raise UserError(f"MNIST is not in {self.raw_dir} and could not be downloaded ({reason}); {where}") from exc

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.prepare_data()
        images, labels = load_split(self.raw_dir, "train", self.check_md5)
        if self.val_size >= len(images):
            raise UserError(f"data.val_size must be smaller than the {len(images)} training images, got {self.val_size}")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        train_idx, val_idx = order[self.val_size :], order[: self.val_size]
        if self.classes is not None:  # one-class training: train and val keep only these digits
            keep = torch.isin(labels, torch.tensor(self.classes))
            train_idx, val_idx = train_idx[keep[train_idx]], val_idx[keep[val_idx]]
            if not len(train_idx) or not len(val_idx):
                raise UserError(f"data.classes={self.classes} leaves {len(train_idx)} training and {len(val_idx)} validation images; pick digits present in the data")
        if self.train_size is not None:
            if self.train_size > len(train_idx):
                raise UserError(f"data.train_size must be at most the {len(train_idx)} training images, got {self.train_size}")
            train_idx = train_idx[: self.train_size]
        self.train_index, self.val_index = train_idx, val_idx  # positions in the official training set
        test_images, test_labels = load_split(self.raw_dir, "test", self.check_md5)
        # On a GPU the whole set lives in its memory: batches are then gathered there, with no copy.
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.device = device if device.type == "cuda" else torch.device("cpu")
        self.train_set, self.val_set, self.test_set = (
            TensorDataset(*(t.to(self.device) for t in tensors))
            for tensors in ((images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx]), (test_images, test_labels))
        )
        only = f" of digits {self.classes}" if self.classes is not None else ""
        log.info("MNIST from %s: %d train, %d val%s, %d test images", self.raw_dir, len(self.train_set), len(self.val_set), only, len(self.test_set))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (uint8) and labels of the `train`, `val` or `test` split."""
        if name not in ("train", "val", "test"):
            raise UserError(f"split must be one of train, val, test, got {name!r}")
        self.setup()
        return getattr(self, f"{name}_set").tensors

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images become floats in [0, 1] here, on the device that trains."""
        images, labels = batch
        return images.float().div_(255), labels

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        # batch_size=None: the sampler yields whole index batches and `dataset[batch]` gathers them.
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        batches = ShuffledBatches(len(dataset), self.batch_size, shuffle, self.shuffle_seed, self.device, rank, world_size)
        return DataLoader(dataset, batch_size=None, sampler=batches)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
