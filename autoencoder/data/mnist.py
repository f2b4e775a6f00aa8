"""MNIST and the datasets in its format (Fashion-MNIST, KMNIST): four IDX files in
`<data_dir>/<name>/raw/` (torchvision's layout).

Each file's header and size are checked, and its md5 against the official files where one is
published; the images are decoded once into uint8 tensors (47 MB for the 60k training images).
Missing files are downloaded (gzipped) from the dataset's mirrors, the ones torchvision uses; with
no network the run stops with one line saying where to put them.
"""

import gzip
from collections.abc import Mapping

from typing_extensions import override

from autoencoder.data.dataset import DATA_ENV, ImageDataset, data_folder
from autoencoder.data.download import download, fetch_files
from autoencoder.utils.files import write_atomic

SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class IDXDataset(ImageDataset):
    """A dataset in MNIST's format: 60k training and 10k test images of 28x28 in four IDX files in
    `<data_dir>/<folder>/raw/`. A subclass names the folder, the mirrors that serve the gzipped
    files and their md5 (`gz_md5`, by file name), the md5 of the unpacked files where they are
    published, and the class names."""

    folder: str
    mirrors: tuple[str, ...]
    gz_md5: Mapping[str, str]
    md5: Mapping[str, str] = {}

    def __init__(self, data_dir: str | None = None, download: bool = True, check_md5: bool = True, **settings):
        """`data_dir`: where `<folder>/raw/` is (null: data/ in the repository); `download` the
        missing files; `check_md5` of the unpacked files. `settings` are ImageDataset's."""
        super().__init__(**{"image_shape": (1, 28, 28), **settings})
        self.data_dir = data_folder(data_dir)
        self.raw_dir = self.data_dir / self.folder / "raw"
        self.download = download
        self.check_md5 = check_md5

    @override
    def prepare(self) -> None:
        names = [name for files in SPLIT_FILES.values() for name in files]
        where = f"put the four {self.folder} files ({', '.join(names)}) in {self.raw_dir} or set {DATA_ENV} to a folder holding {self.folder}/raw/"
        fetch_files(self.folder, self.raw_dir, names, where, self._download if self.download else None)

    def _download(self, names: list[str]) -> None:
        for name in names:
            gzipped = download([f"{mirror}{name}.gz" for mirror in self.mirrors], self.gz_md5[name])
            write_atomic(self.raw_dir / name, gzip.decompress(gzipped))

    @override
    def load(self, split: str):
        from autoencoder.data.idx import read_pair  # torch loads with the images, after prepare() has run

        images, labels = (self.raw_dir / name for name in SPLIT_FILES[split])
        return read_pair(images, labels, self.md5 if self.check_md5 else {})


class MNIST(IDXDataset):
    """Handwritten digits (LeCun et al. 1998)."""

    folder = "MNIST"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    gz_md5 = {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    md5 = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    class_names = tuple(str(digit) for digit in range(10))


class FashionMNIST(IDXDataset):
    """Zalando's article images (Xiao et al. 2017), MNIST's format and sizes."""

    folder = "FashionMNIST"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    gz_md5 = {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    md5 = {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }
    class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class KMNIST(IDXDataset):
    """Kuzushiji-MNIST (Clanuwat et al. 2018): ten cursive Japanese characters in MNIST's format.
    Only the md5 of its gzipped files is published (checked when they are downloaded), so its
    unpacked files get the header and size checks alone."""

    folder = "KMNIST"
    mirrors = ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)
    gz_md5 = {
        "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
    }
    class_names = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
