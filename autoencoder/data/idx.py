"""The IDX file format of MNIST-style datasets: a magic number, the dimensions, then raw bytes."""

import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from autoencoder.data.download import check_md5
from autoencoder.utils.errors import UserError


def read_idx(path: Path, md5: str | None = None) -> torch.Tensor:
    """Decode an unsigned-byte IDX file into a uint8 tensor, checking its header and, when given,
    its md5."""
    raw = bytearray(path.stat().st_size)  # read once into a buffer the tensor then shares: no copies
    with path.open("rb") as file:
        file.readinto(raw)
    check_md5(path, raw, md5)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise UserError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex() or 'empty'}); replace it with the official file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated inside its header; replace it with the official file")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(torch.Size(shape).numel())
    if len(raw) != expected:
        raise UserError(f"{path} holds {len(raw)} bytes but its header {list(shape)} needs {expected}; the file is truncated or corrupt")
    if expected == header:  # no items (frombuffer refuses an empty view)
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(raw, dtype=torch.uint8, offset=header).reshape(shape)


def read_pair(images_path: Path, labels_path: Path, md5: Mapping[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from an images and a labels IDX file, each
    checked against its md5 in `md5` (by file name) when it has one there."""
    images, labels = (read_idx(p, md5.get(p.name)) for p in (images_path, labels_path))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{images_path} and {labels_path} do not match: images {list(images.shape)}, labels {list(labels.shape)}")
    return images.unsqueeze(1), labels.long()
