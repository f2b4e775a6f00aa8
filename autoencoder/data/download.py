"""Files a dataset needs: downloaded with torchvision when they are missing and the network allows,
and checked against their official md5 once read."""

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from autoencoder.utils.errors import UserError

log = logging.getLogger(__name__)


def fetch_files(dataset: str, folder: Path, names: Sequence[str], where: str, download: bool, torchvision_class: str, data_dir: Path) -> None:
    """Make sure the files `names` are in `folder`. Missing ones are downloaded by torchvision's
    dataset class `torchvision_class` into `data_dir` when `download`; otherwise, or when that
    fails (no network, a full disk), one UserError line names what is missing and `where` to put it."""
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return
    if not download:
        raise UserError(f"{dataset} files missing from {folder}: {', '.join(missing)}; {where}")
    log.info("%s files missing from %s; downloading them with torchvision", dataset, folder)
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, torchvision_class)(str(data_dir), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - any network or disk failure means the same to the user
        text = " ".join(str(exc).split())
        found = re.search(r"<urlopen error ([^>]*)>", text)
        reason = found.group(1) if found else text[:160]
        raise UserError(f"{dataset} is not in {folder} and could not be downloaded ({reason}); {where}") from exc


def check_md5(path: Path, raw: bytes | bytearray, md5: str | None) -> None:
    """A UserError unless the bytes `raw` read from `path` have the md5 `md5` (None: no check)."""
    if md5 is not None and (digest := hashlib.md5(raw).hexdigest()) != md5:
        raise UserError(f"{path} fails its md5 check ({digest}, expected {md5}): the file is corrupt; delete it to download again or replace it")
