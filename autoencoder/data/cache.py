"""A uint8 cache file of decoded images, for a dataset whose images do not fit in memory.

The file is a HEADER_BYTES header (magic, version, the images' shape and the source's fingerprint),
then the images, (N, C, H, W) uint8, page-aligned. The fingerprint covers what the images were
decoded from (each file's path, size, modification time and label, and the decode settings), so a
cache of other files or settings, of another version, or shorter than its header says (a copy cut
short) is decoded again, never read. It is written through a temporary file renamed over the old
one: a build that fails (a full disk, a killed process) leaves the earlier cache, or none.

Reading (`CachedImages`) copies each image of a batch from the file with one positioned read into
the batch's own memory, so the process holds no more of the file than the batch: the pages read
stay in the kernel's page cache, which keeps them for the next read and reclaims them when memory
is short. (A memory map would count every page it touched as the process's resident memory, up to
the whole file when the file is in the page cache.)
"""

import hashlib
import logging
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from autoencoder.utils.errors import UserError
from autoencoder.utils.files import open_atomic

log = logging.getLogger(__name__)

MAGIC, VERSION = b"AECACHE\0", 1
HEADER = struct.Struct("<8sIQIII32s")  # magic, version, count, channels, height, width, fingerprint (sha256)
HEADER_BYTES = 4096  # the images start on a page boundary

Shape = tuple[int, int, int, int]  # (N, C, H, W)


def fingerprint(root: Path, files: Iterable[tuple[Path, int]], settings: str) -> bytes:
    """What a cache was decoded from: the files (image, label) under `root` as they are now, and
    the decode `settings`. A file added, removed, relabelled or rewritten changes it."""
    digest = hashlib.sha256(f"{VERSION} {settings}\n".encode())
    for path, label in files:
        try:
            stat = path.stat()
        except OSError as exc:
            raise UserError(f"cannot read {path} ({exc.strerror}); the folder changed while it was read, so start again") from exc
        digest.update(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\t{label}\n".encode())
    return digest.digest()


class CachedImages:
    """The images (N, C, H, W) uint8 of a cache file, read batch by batch."""

    def __init__(self, path: Path, shape: Shape):
        self.path, self.shape = path, shape
        self._image_bytes = int(np.prod(shape[1:]))
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        if hasattr(self, "_fd"):
            os.close(self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def gather(self, index: np.ndarray) -> np.ndarray:
        """The images at `index` (B,), in that order, read into memory: (B, C, H, W) uint8."""
        batch = np.empty((len(index), *self.shape[1:]), np.uint8)
        for row, position in zip(batch.reshape(len(index), -1), index.tolist(), strict=True):  # row: (C*H*W,), a view into batch
            if os.preadv(self._fd, [row], HEADER_BYTES + position * self._image_bytes) != self._image_bytes:
                raise UserError(f"the image cache {self.path} was cut short while it was read; run again to decode it afresh")
        return batch


def _problem(path: Path, shape: Shape, source: bytes) -> str | None:
    """Why the file at `path` is not a cache of images `shape` decoded from `source`, or None."""
    with path.open("rb") as file:
        header = file.read(HEADER.size)
        size = file.seek(0, 2)
    if len(header) < HEADER.size or header[:8] != MAGIC:
        return "not an image cache"
    _, version, *found, found_source = HEADER.unpack(header)
    if version != VERSION:
        return f"version {version}, not {VERSION}"
    if tuple(found) != shape or found_source != source:
        return "decoded from other files or settings"
    if size != HEADER_BYTES + int(np.prod(shape)):
        return f"{size} bytes where {HEADER_BYTES + int(np.prod(shape))} were written: truncated or corrupt"
    return None


def readable(size: float) -> str:
    """A number of bytes as a person reads it: 3.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def build(path: Path, shape: Shape, source: bytes, chunks: Iterable[np.ndarray]) -> None:
    """Write the cache of images `shape` decoded from `source`, given as `chunks` (n, C, H, W) in
    order, atomically. A folder that cannot take it is one UserError, raised before decoding where
    the free space already tells."""
    need = HEADER_BYTES + int(np.prod(shape))
    advice = "free space there, or set data.cache_dir to a folder that has it (or data.in_memory=true if the images fit in memory)"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < need:
            raise UserError(f"cannot write the image cache {path.name} in {path.parent}: {readable(free)} free, {readable(need)} needed; {advice}")
        with open_atomic(path) as file:
            file.write(HEADER.pack(MAGIC, VERSION, *shape, source).ljust(HEADER_BYTES, b"\0"))
            for chunk in chunks:
                file.write(np.ascontiguousarray(chunk, dtype=np.uint8).data)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot write the image cache {path.name} in {path.parent}: {reason} ({readable(need)} needed); {advice}") from exc


def ensure(path: Path, shape: Shape, source: bytes, decode: Callable[[], Iterable[np.ndarray]]) -> None:
    """Make the file at `path` the cache of images `shape` decoded from `source`: kept when it is
    that cache already, else built from `decode()`'s chunks (the reason logged)."""
    problem = _problem(path, shape, source) if path.is_file() else "missing"
    if problem is not None:
        log.info("decoding %d images into the cache %s (%s, was %s)", shape[0], path, readable(HEADER_BYTES + int(np.prod(shape))), problem)
        build(path, shape, source, decode())
