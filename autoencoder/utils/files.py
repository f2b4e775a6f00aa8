"""Writes that a crash cannot leave half done: the text goes to a temporary file beside the target,
which then replaces it in one step (os.replace is atomic on POSIX and Windows). A reader sees the
old file or the new one, never a mix."""

import os
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: a rename, not a copy
    try:
        with tmp.open("w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
