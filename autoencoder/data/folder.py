"""A folder of your own images: `data=folder data.path=<dir>`.

The images (png, jpg/jpeg, bmp, gif, webp, tif/tiff, in any case) lie directly in `path`, one
class named after the folder, or in one subfolder per class: the sorted subfolder names are the
class names, labels 0..K-1, so `data.classes=[cats]` works as for the other datasets. When `path`
holds `train/` and `test/`, each laid out so, they are its own split; otherwise a seeded draw
(`split_seed`) holds out `test_size` of the images as the test split. Names starting with a dot
(hidden files, macOS's `._` copies) are skipped.

Every image is decoded once with Pillow, converted to RGB (or L with `grayscale`; transparency and
an animated GIF's later frames are dropped) and resized to size x size, bilinear, its aspect not
kept (crop beforehand to keep it), into one uint8 tensor per split. The memory that takes is
checked before any file is decoded: with `in_memory=auto` a folder too large to hold is decoded once
into a cache file instead (autoencoder.data.cache) and read from it batch by batch; with `true` it
stops with one line, and `false` always reads it from the cache.
"""

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from PIL import Image
from typing_extensions import override

from autoencoder.config.validation import FRACTION, integer, one_of
from autoencoder.data import cache
from autoencoder.data.cache import CachedImages, readable
from autoencoder.data.dataset import VAL_SIZE, ImageDataset
from autoencoder.utils.errors import UserError

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
READ = f"the files read: {', '.join(EXTENSIONS)}, in any case"
HEADROOM = 0.8  # the share of the available memory the images may take; the rest is the run's own
CHUNK = 4096  # images decoded at a time into a cache file

Files = list[tuple[Path, int]]  # (image file, label)


def available_memory() -> int:
    """Bytes of memory available: Linux's MemAvailable, else (macOS) the physical memory."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _folder(path: Path) -> Path:
    if not path.is_dir():
        raise UserError(f"data.path {path} {'is not a folder' if path.exists() else 'does not exist'}; give the folder that holds your images")
    return path


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in EXTENSIONS]


def _layout(folder: Path, name: str) -> dict[str, list[Path]]:
    """{class name: its image files} of `folder`: its images as the one class `name`, or each
    subfolder's images as a class named after it."""
    images, subfolders = _images(folder), [p for p in _visible(folder) if p.is_dir()]
    if images and subfolders:
        raise UserError(f"data.path {folder} holds both images and subfolders ({subfolders[0].name}/); give either images (one class) or a subfolder per class")
    if images:
        return {name: images}
    if not subfolders:
        raise UserError(f"data.path {folder} holds no image files ({READ})")
    classes = {sub.name: _images(sub) for sub in subfolders}
    for sub, files in classes.items():
        if not files:
            raise UserError(f"class folder {folder / sub} holds no image files ({READ}); add images or remove the folder")
    return classes


def _labelled(layout: dict[str, list[Path]]) -> Files:
    return [(path, label) for label, files in enumerate(layout.values()) for path in files]


def scan(root: Path, test_size: float, split_seed: int) -> tuple[tuple[str, ...], dict[str, Files]]:
    """The class names and the labelled files of the `train` and `test` splits of `root`."""
    _folder(root)
    own = [split for split in ("train", "test") if (root / split).is_dir()]
    if len(own) == 1:
        lacks = "test" if own == ["train"] else "train"
        raise UserError(f"data.path {root} has {own[0]}/ but no {lacks}/; give both (its own split) or neither (data.test_size of the images are held out)")
    name = root.resolve().name
    if own:
        train, test = (_layout(root / split, name) for split in own)
        if list(test) != list(train):
            raise UserError(f"the classes of {root / 'test'} ({', '.join(test)}) are not those of train/ ({', '.join(train)}); give both the same subfolders")
        return tuple(train), {"train": _labelled(train), "test": _labelled(test)}
    layout = _layout(root, name)
    files = _labelled(layout)
    held_out = max(1, round(test_size * len(files)))
    if held_out >= len(files):
        raise UserError(f"data.test_size={test_size} of the {len(files)} images in {root} leaves none to train on; add images or give train/ and test/")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed)).tolist()
    return tuple(layout), {"test": [files[i] for i in sorted(order[:held_out])], "train": [files[i] for i in sorted(order[held_out:])]}


def _read(path: Path, mode: str, size: int) -> np.ndarray:
    """One image file as a (size, size) or (size, size, 3) uint8 array."""
    try:
        with Image.open(path) as image:
            image.draft(mode, (size, size))  # a JPEG is decoded at 1/2, 1/4 or 1/8 scale where that still covers size x size
            return np.array(image.convert(mode).resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # how Pillow says a file is not a readable image
        raise UserError(f"{path} is not an image Pillow can read ({' '.join(str(exc).split())}); replace or remove it") from exc


def decode(files: Files, size: int, grayscale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, size, size) uint8 and labels (N,) int64 of `files`, one file per thread
    (Pillow decodes without holding the GIL), written straight into one preallocated tensor."""
    mode = "L" if grayscale else "RGB"
    images = torch.empty(len(files), len(mode), size, size, dtype=torch.uint8)

    def put(i: int) -> None:
        images[i] = torch.from_numpy(_read(files[i][0], mode, size)).view(size, size, len(mode)).permute(2, 0, 1)

    pool = ThreadPoolExecutor()
    try:
        list(pool.map(put, range(len(files))))
    finally:
        pool.shutdown(cancel_futures=True)  # after an unreadable file, the rest are not decoded
    return images, torch.tensor([label for _, label in files], dtype=torch.int64)


class ImageFolder(ImageDataset):
    """Your own images from `path`, resized to size x size: RGB (3 channels) or, with grayscale,
    1 channel. The default size, 64, keeps 10k colour images at 120 MB and the default conv network
    quick on a CPU; any size works with it (`python -m autoencoder.shapes` shows the layers)."""

    def __init__(
        self,
        path: str,
        size: Annotated[int, integer(1)] = 64,
        grayscale: bool = False,
        test_size: Annotated[float, FRACTION] = 0.2,
        val_size: Annotated[int | float, VAL_SIZE] = 0.1,
        in_memory: Annotated[bool | str, one_of("auto", True, False)] = "auto",
        cache_dir: str | None = None,
        **settings,
    ):
        """`test_size`: the fraction of the images held out as the test split where `path` has
        no train/ and test/ of its own; `val_size` a fraction of the training images, or a number.
        `in_memory`: where the decoded images live: true, in memory (a folder too large stops with
        one line); false, in a uint8 cache file decoded once and read batch by batch (rebuilt when
        the images change); auto, in memory when they fit in the memory available, else the cache
        file. `cache_dir`: the cache file's folder (null: a hidden .autoencoder-cache/ in `path`;
        else one of your own, a faster disk or where `path` is read-only). `settings` are
        ImageDataset's."""
        self.path = Path(path).expanduser()
        self.size, self.grayscale, self.test_size, self.in_memory = size, grayscale, test_size, in_memory
        super().__init__(**{"image_shape": (1 if grayscale else 3, size, size), "val_size": val_size, **settings})  # scans the folder for `classes`
        self.files = self._scan[1]
        # Beside the images (a hidden folder, which scan skips), else in cache_dir under a name of this folder's own.
        resolved = self.path.resolve()
        own = f"{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"
        self.cache_folder = Path(cache_dir).expanduser() / own if cache_dir is not None else self.path / ".autoencoder-cache"

    @cached_property
    def _scan(self) -> tuple[tuple[str, ...], dict[str, Files]]:
        """The class names and the labelled files of each split, read from the folder once."""
        return scan(self.path, self.test_size, self.split_seed)

    @property
    @override
    def class_names(self) -> tuple[str, ...]:
        return self._scan[0]

    @override
    def prepare(self) -> None:
        """Nothing to download; the folder, scanned when the dataset was built, must still be there.
        The cache files are built here, where they are read from: Lightning prepares in one process
        per machine, so that DDP's other processes find them built."""
        _folder(self.path)
        if self._from_cache:
            self._cache_files  # noqa: B018 - built (or found up to date) here, once for the process

    @property
    def _count(self) -> int:
        return sum(map(len, self.files.values()))

    @property
    def _channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def _decoded_bytes(self) -> int:
        return self._count * self._channels * self.size**2

    @cached_property
    def _fits(self) -> bool:
        """Whether the decoded images fit in the memory available, with the train and val copies
        that setup makes of the training images."""
        return 2 * self._decoded_bytes <= HEADROOM * available_memory()

    @cached_property
    def _from_cache(self) -> bool:
        """Whether the images are read from cache files: in_memory false, or auto and too large."""
        if self.in_memory is False or (self.in_memory == "auto" and not self._fits):
            log.info("the %d images of %s (%s decoded) are read from %s", self._count, self.path, readable(self._decoded_bytes), self.cache_folder)
            return True
        return False

    @cached_property
    def _decoded(self) -> dict[str, tuple[torch.Tensor | CachedImages, torch.Tensor]]:
        """Both splits, decoded at the first `load`: into memory once it is known to be there, else
        read from their cache files (built where they are not up to date)."""
        if self._from_cache:
            return {split: self._cached(split, files) for split, files in self.files.items()}
        count, channels, decoded = self._count, self._channels, self._decoded_bytes
        if not self._fits:
            lower = "lower data.size" + ("" if self.grayscale else " or set data.grayscale=true")
            raise UserError(
                f"the {count} images of {self.path} at {channels}x{self.size}x{self.size} need {readable(2 * decoded)} of memory "
                f"({readable(decoded)} decoded, and the train/val copies) but {readable(available_memory())} is available; {lower}, "
                "or data.in_memory=auto to read them from a cache file"
            )
        log.info("decoding the %d images of %s at %dx%dx%d (%s)", count, self.path, channels, self.size, self.size, readable(decoded))
        return {split: decode(files, self.size, self.grayscale) for split, files in self.files.items()}

    @cached_property
    def _cache_files(self) -> dict[str, tuple[Path, cache.Shape]]:
        """Each split's cache file and its images' shape, checked against the files (and built
        where not up to date) once per process: by `prepare`, else by the first `load`."""
        return {split: self._cache_file(split, files) for split, files in self.files.items()}

    def _cache_file(self, split: str, files: Files) -> tuple[Path, cache.Shape]:
        """The cache file of `split` and its images' shape, decoded into it CHUNK at a time where
        it is not up to date."""
        mode = "L" if self.grayscale else "RGB"
        shape = (len(files), len(mode), self.size, self.size)
        source = cache.fingerprint(self.path, files, f"{self.size} {mode}")

        def chunks():  # (CHUNK, C, size, size) uint8 at a time, in file order
            for start in range(0, len(files), CHUNK):
                yield decode(files[start : start + CHUNK], self.size, self.grayscale)[0].numpy()

        path = self.cache_folder / f"{split}-{self.size}-{mode}.u8"
        cache.ensure(path, shape, source, chunks)
        return path, shape

    def _cached(self, split: str, files: Files) -> tuple[CachedImages, torch.Tensor]:
        """The images of `split`, read from its cache file, and their labels."""
        return CachedImages(*self._cache_files[split]), torch.tensor([label for _, label in files], dtype=torch.int64)

    @override
    def load(self, split: str) -> tuple[torch.Tensor | CachedImages, torch.Tensor]:
        return self._decoded[split]
