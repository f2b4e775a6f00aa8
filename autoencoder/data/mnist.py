"""MNIST from the four official IDX files in `<data_dir>/MNIST/raw/` (torchvision's layout).

Each file's header and size are checked, and its md5 against the official files; the images are
decoded once into uint8 tensors (47 MB for the 60k training images). When the files are missing,
torchvision downloads them; with no network the run stops with one line saying where to put them.
"""

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from typing_extensions import override

from autoencoder import REPO_DIR
from autoencoder.data.idx import read_idx
from autoencoder.data.images import ImageDataModule
from autoencoder.utils.errors import UserError

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


def load_split(raw_dir: Path, split: str, check_md5: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of the official `train` or `test` split."""
    paths = [raw_dir / name for name in SPLIT_FILES[split]]
    images, labels = (read_idx(p, OFFICIAL_MD5[p.name] if check_md5 else None) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{paths[0]} and {paths[1]} do not match: images {list(images.shape)}, labels {list(labels.shape)}")
    return images.unsqueeze(1), labels.long()


class MNISTDataModule(ImageDataModule):
    """The 60k official training images (split into train and val) and the 10k test images."""

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
        super().__init__(batch_size, val_size, train_size, split_seed, shuffle_seed, classes)
        self.save_hyperparameters()
        self.data_dir = Path(data_dir).expanduser() if data_dir else REPO_DIR / "data"
        self.raw_dir = self.data_dir / "MNIST" / "raw"
        self.download = download
        self.check_md5 = check_md5

    @override
    def prepare_data(self) -> None:
        missing = [name for name in OFFICIAL_MD5 if not (self.raw_dir / name).is_file()]
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

    @override
    def load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_split(self.raw_dir, split, self.check_md5)
