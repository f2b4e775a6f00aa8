"""Folder images read from a uint8 cache file (data.in_memory=false, or auto when they do not fit):
the same images, batches, resumed order and DDP shares as in memory; a cache that is stale, cut
short or not a cache at all is rebuilt; a write that fails leaves the earlier cache and is one line.

The images are test_folder's solid colours, which carry each image's label and index, so equal
batches are the same images, not merely images that look alike."""

import logging
import os
import re
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from autoencoder.config.validation import validate
from autoencoder.data import cache, folder
from autoencoder.data.cache import HEADER_BYTES
from autoencoder.data.folder import ImageFolder
from autoencoder.data.images import ImageDataModule
from autoencoder.utils import files
from autoencoder.utils.errors import UserError
from tests.data.test_folder import datamodule, ids, write_classes


@pytest.fixture
def animals(tmp_path):
    return write_classes(tmp_path / "animals")


def cache_files(root):
    return sorted(p.name for p in (root / ".autoencoder-cache").iterdir())


def batches(dm, epoch=0, rank=0, world_size=1):
    dm.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return loader


def test_the_cache_holds_the_images_decoding_gives(animals):
    held, mapped = datamodule(animals, in_memory=True), datamodule(animals, in_memory=False)
    assert cache_files(animals) == ["test-8-RGB.u8", "train-8-RGB.u8"]
    for split in ("train", "val", "test"):
        (images, labels), (cached, cached_labels) = held.split(split), mapped.split(split)
        assert torch.equal(images, cached) and torch.equal(labels, cached_labels)
    assert (animals / ".autoencoder-cache" / "train-8-RGB.u8").stat().st_size == HEADER_BYTES + 43 * 3 * 8 * 8 + 5 * 3 * 8 * 8
    grey = datamodule(animals, in_memory=False, grayscale=True)  # other settings: a cache of their own
    assert grey.split("test")[0].shape == (12, 1, 8, 8) and "test-8-L.u8" in cache_files(animals)


def test_auto_reads_from_the_cache_only_what_does_not_fit(animals, monkeypatch):
    assert not (animals / ".autoencoder-cache").exists() and datamodule(animals).train_set.tensors[0].dtype == torch.uint8
    monkeypatch.setattr(folder, "available_memory", lambda: 1000)
    dm = datamodule(animals)
    assert cache_files(animals) == ["test-8-RGB.u8", "train-8-RGB.u8"] and len(dm.split("train")[0]) == 43


def test_batches_come_in_the_same_order_resume_and_shard_alike(animals):
    held, mapped = datamodule(animals, in_memory=True, batch_size=4), datamodule(animals, in_memory=False, batch_size=4)
    for epoch in (0, 1):
        pairs = list(zip(batches(held, epoch), batches(mapped, epoch), strict=True))
        assert len(pairs) == 11 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    first, second = (ids(torch.cat([x for x, _ in batches(mapped, epoch)]).float() / 255) for epoch in (0, 1))
    assert first == second and len(first) == 43  # every training image once per epoch
    # Stopped after 3 batches of epoch 1: a new data module goes on from the 4th, as the held one does.
    loader = batches(mapped, epoch=1)
    taken = [batch[0] for _, batch in zip(range(3), loader, strict=False)]  # range first: zip takes no 4th batch
    resumed = batches(datamodule(animals, in_memory=False, batch_size=4), epoch=1)
    resumed.load_state_dict(loader.state_dict())
    rest = [x for x, _ in resumed]
    assert torch.equal(torch.cat(taken + rest), torch.cat([x for x, _ in batches(held, epoch=1)]))
    for rank in range(2):  # each DDP process's share
        shares = zip(batches(held, 0, rank, 2), batches(mapped, 0, rank, 2), strict=True)
        assert all(torch.equal(a[0], b[0]) for a, b in shares)


def test_the_cache_is_built_where_lightning_prepares_and_read_as_built_elsewhere(animals, caplog, monkeypatch):
    # Under DDP, prepare_data runs in one process per machine; the others only set up.
    checked = []
    fingerprint = cache.fingerprint
    monkeypatch.setattr(cache, "fingerprint", lambda *args: checked.append(args) or fingerprint(*args))
    preparing = ImageDataModule(ImageFolder(str(animals), size=8, in_memory=False))
    preparing.prepare_data()
    assert cache_files(animals) == ["test-8-RGB.u8", "train-8-RGB.u8"]
    preparing.setup("fit")
    assert len(checked) == 2  # each split's files looked at once, by prepare, not again by setup
    with caplog.at_level(logging.INFO, logger="autoencoder.data.cache"):
        other = ImageDataModule(ImageFolder(str(animals), size=8, in_memory=False))
        other.setup("fit")
    assert "decoding" not in caplog.text and len(other.split("train")[0]) == 43


def test_a_cache_cut_short_while_read_is_one_line(animals):
    dm = datamodule(animals, in_memory=False)
    train = animals / ".autoencoder-cache" / "train-8-RGB.u8"
    os.truncate(train, HEADER_BYTES + 10 * 3 * 8 * 8)  # 10 of its 48 images left
    with pytest.raises(UserError, match=rf"^the image cache {train} was cut short while it was read; run again to decode it afresh$"):
        dm.split("train")


def test_a_stale_or_truncated_cache_is_rebuilt(animals, caplog):
    datamodule(animals, in_memory=False)
    train = animals / ".autoencoder-cache" / "train-8-RGB.u8"
    repainted = animals / "ant" / "03.png"
    Image.new("RGB", (30, 20), (0, 10 * 3, 200)).save(repainted)  # the same image's place, another blue
    os.utime(repainted, ns=(1, 1))  # and another modification time, however coarse the file system's clock
    with caplog.at_level(logging.INFO, logger="autoencoder.data.cache"):
        dm = datamodule(animals, in_memory=False)
    assert "was decoded from other files or settings" in caplog.text
    everything = torch.cat([dm.split(s)[0] for s in ("train", "val", "test")])
    assert (everything[:, 2, 0, 0] * 255).round().eq(200).sum() == 1
    expected = dm.split("train")[0]  # read before the file under dm is damaged in place
    for damage, reason in ((lambda b: b[: len(b) - 7], "truncated or corrupt"), (lambda b: b"not a cache" + b[11:], "not an image cache")):
        train.write_bytes(damage(train.read_bytes()))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="autoencoder.data.cache"):
            assert torch.equal(datamodule(animals, in_memory=False).split("train")[0], expected)
        assert reason in caplog.text


def test_a_failed_write_is_one_line_and_leaves_the_earlier_cache(animals, monkeypatch):
    datamodule(animals, in_memory=False)
    train = animals / ".autoencoder-cache" / "train-8-RGB.u8"
    earlier = train.read_bytes()
    os.utime(animals / "ant" / "00.png", ns=(1, 1))  # stale: the next load rebuilds it

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(UserError) as error:
        datamodule(animals, in_memory=False)
    assert str(error.value).startswith(
        f"cannot write the image cache train-8-RGB.u8 in {animals}/.autoencoder-cache: No space left on device (13.0 KiB needed); free space there, "
        "or set data.cache_dir to a folder that has it"
    )
    assert train.read_bytes() == earlier and cache_files(animals) == ["test-8-RGB.u8", "train-8-RGB.u8"]  # no temporary file left

    decoded = []
    monkeypatch.setattr(folder, "decode", lambda *args: decoded.append(args))
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: SimpleNamespace(free=2048))
    with pytest.raises(UserError, match=r"^cannot write the image cache train-8-RGB.u8 in .*: 2.0 KiB free, 13.0 KiB needed; free space there"):
        datamodule(animals, in_memory=False)
    assert decoded == [] and train.read_bytes() == earlier  # stopped before decoding


def test_an_unwritable_cache_folder_and_a_bad_setting_are_one_line(animals, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError) as error:
        datamodule(animals, in_memory=False, cache_dir=str(tmp_path / "a_file" / "caches"))
    where = f"{tmp_path}/a_file/caches/animals-[0-9a-f]{{8}}"
    assert re.fullmatch(rf"cannot write the image cache test-8-RGB.u8 in {where}: Not a directory \(6.2 KiB needed\); free space there, .*", str(error.value))
    dm = datamodule(animals, in_memory=False, cache_dir=str(tmp_path / "caches"))
    assert len(dm.split("test")[0]) == 12 and not (animals / ".autoencoder-cache").exists()
    with pytest.raises(UserError, match=r"^data.in_memory must be one of auto, True, False, got 'maybe'$"):
        validate(OmegaConf.create({"data": {"_target_": "autoencoder.data.folder.ImageFolder", "path": "x", "in_memory": "maybe"}}))
