"""Files a dataset needs: downloaded from the dataset's official mirrors when they are missing and
the network allows, checked against the official md5, and checked again once read.

Only the standard library is used (urllib, tarfile; gzip in the datasets that unpack with it), so
that a missing dataset on a machine without a network is reported within a second of the command
starting.
"""

import hashlib
import io
import logging
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic

log = logging.getLogger(__name__)

TIMEOUT_S = 60  # per connection attempt and read; a mirror that stalls longer is given up


def fetch_files(dataset: str, folder: Path, names: Sequence[str], where: str, download: Callable[[list[str]], None] | None) -> None:
    """Make sure the files `names` are in `folder`. Missing ones are fetched by `download` (given
    their names) unless it is None; otherwise, or when that fails (no network, a mirror down, a
    full disk), one UserError line names what is missing and `where` to put it."""
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return
    if download is None:
        raise UserError(f"{dataset} files missing from {folder}: {', '.join(missing)}; {where}")
    log.info("%s files missing from %s; downloading them", dataset, folder)
    try:
        download(missing)
    except (OSError, EOFError, tarfile.TarError) as exc:  # the network's, the archive's and the disk's failures
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"{dataset} is not in {folder} and could not be downloaded ({' '.join(str(reason).split())[:160]}); {where}") from exc


def download(urls: Sequence[str], md5: str) -> bytes:
    """The bytes of the file at the first of `urls` (mirrors of one file) that sends it whole (its
    md5 the official one); the last mirror's error when none does."""
    for i, url in enumerate(urls, 1):
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                data = response.read()
            if hashlib.md5(data).hexdigest() == md5:
                return data
            error = OSError(f"{url} sent a file that fails its md5 check")
        except OSError as exc:
            error = exc
        if i < len(urls):
            log.info("%s failed (%s); trying the next mirror", url, error)
    raise error


def untar_to(folder: Path, data: bytes, members: Sequence[str]) -> None:
    """Unpack the files `members` (paths inside the archive) of the tar.gz bytes `data` into
    `folder`. Only plain files are taken, each written atomically, so that an archive cannot place
    links or files outside `folder`."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in members:
            file = archive.extractfile(archive.getmember(member))
            if file is None:
                raise tarfile.TarError(f"{member} in the archive is not a plain file")
            write_atomic(folder / member, file.read())


def check_md5(path: Path, raw: bytes | bytearray, md5: str | None) -> None:
    """A UserError unless the bytes `raw` read from `path` have the md5 `md5` (None: no check)."""
    if md5 is not None and (digest := hashlib.md5(raw).hexdigest()) != md5:
        raise UserError(f"{path} fails its md5 check ({digest}, expected {md5}): the file is corrupt; delete it to download again or replace it")
