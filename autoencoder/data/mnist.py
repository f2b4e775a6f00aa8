"""MNIST and the datasets in its format (Fashion-MNIST, KMNIST): four IDX files in
`<data_dir>/<name>/raw/` (torchvision's layout).

Each file's header and size are checked, and its md5 against the official files where one is
published; the images are decoded once into uint8 tensors (47 MB for the 60k training images).
When the files are missing, torchvision downloads them; with no network the run stops with one
line saying where to put them.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from typing_extensions import override

from autoencoder import REPO_DIR
from autoencoder.data.download import fetch_files
from autoencoder.data.idx import read_idx
from autoencoder.data.images import ImageDataModule
from autoencoder.utils.errors import UserError

SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DATA_ENV = "AUTOENCODER_DATA_DIR"


def load_split(raw_dir: Path, split: str, md5: Mapping[str, str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of the `train` or `test` split, each file
    checked against its md5 in `md5` when it has one there."""
    paths = [raw_dir / name for name in SPLIT_FILES[split]]
    images, labels = (read_idx(p, (md5 or {}).get(p.name)) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{paths[0]} and {paths[1]} do not match: images {list(images.shape)}, labels {list(labels.shape)}")
    return images.unsqueeze(1), labels.long()


class IDXDataModule(ImageDataModule):
    """A dataset in MNIST's format: 60k training and 10k test images of 28x28 in four IDX files in
    `<data_dir>/<folder>/raw/`. A subclass names the folder, torchvision's class that downloads
    the files, the md5 of the files (after gunzip) where they are published, and the class names."""

    folder: str
    torchvision_class: str
    md5: Mapping[str, str] = {}

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 128,
        val_size: int | float = 5000,
        train_size: int | None = None,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        download: bool = True,
        check_md5: bool = True,
        classes: Sequence[int | str] | None = None,
        image_shape: Sequence[int] = (1, 28, 28),
        binarize: bool = False,
    ):
        super().__init__(batch_size, val_size, train_size, split_seed, shuffle_seed, classes, image_shape, binarize)
        self.save_hyperparameters()
        self.data_dir = Path(data_dir).expanduser() if data_dir else REPO_DIR / "data"
        self.raw_dir = self.data_dir / self.folder / "raw"
        self.download = download
        self.check_md5 = check_md5

    @override
    def prepare_data(self) -> None:
        names = [name for files in SPLIT_FILES.values() for name in files]
        where = f"put the four {self.folder} files ({', '.join(names)}) in {self.raw_dir} or set {DATA_ENV} to a folder holding {self.folder}/raw/"
        fetch_files(self.folder, self.raw_dir, names, where, self.download, self.torchvision_class, self.data_dir)

    @override
    def load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_split(self.raw_dir, split, self.md5 if self.check_md5 else None)


class MNISTDataModule(IDXDataModule):
    """Handwritten digits (LeCun et al. 1998)."""

    folder, torchvision_class = "MNIST", "MNIST"
    md5 = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    class_names = tuple(str(digit) for digit in range(10))


class FashionMNISTDataModule(IDXDataModule):
    """Zalando's article images (Xiao et al. 2017), MNIST's format and sizes."""

    folder, torchvision_class = "FashionMNIST", "FashionMNIST"
    md5 = {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }
    class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class KMNISTDataModule(IDXDataModule):
    """Kuzushiji-MNIST (Clanuwat et al. 2018): ten cursive Japanese characters in MNIST's format.
    Only the md5 of its gzipped files is published (torchvision checks them when it downloads),
    so its unpacked files get the header and size checks alone."""

    folder, torchvision_class = "KMNIST", "KMNIST"
    class_names = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
