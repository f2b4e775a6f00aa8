"""Writes that a crash cannot leave half done: the data go to a temporary file beside the target,
flushed to disk, which then replaces it in one step (os.replace is atomic on POSIX and Windows). A
reader sees the old file or the new one, never a mix, and a failed write (a full disk, a quota)
leaves the old file as it was. A write killed with its process leaves only its temporary file,
which `remove_stale_temporaries` clears later."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from autoencoder.utils.errors import UserError


def _temporary(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")  # same folder: a rename, not a copy


@contextmanager
def open_atomic(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file whose writes become `path` in one step when the block ends: for data written in
    pieces, too large to hold at once. Anything raised inside the block, or by the final flush, leaves
    `path` as it was, removes the temporary file and is raised again as it was."""
    path = Path(path)
    tmp = _temporary(path, os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes | memoryview) -> None:
    """Write `data` (text, or bytes) to `path` atomically. A write the folder cannot take is a
    UserError naming the folder and the bytes the write needed."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open_atomic(path) as file:
            file.write(payload)
    except OSError as exc:
        raise UserError(
            f"cannot write {path.name} in {path.parent}: {exc.strerror or type(exc).__name__} "
            f"({len(payload)} bytes needed); free space or pick a folder you can write to"
        ) from exc


def write_json(path: str | Path, data: object) -> None:
    """Write `data` as indented JSON with a final newline, atomically: the one way the package writes
    its JSON records (metrics.json, evaluation.json, anomaly.json, sample.json, the benchmarks')."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writes of processes no longer running left in `folder`;
    returns them. A live process's temporary file is its write in progress and is kept."""
    stale = []
    for tmp in Path(folder).glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)
            stale.append(tmp)
    return stale


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
