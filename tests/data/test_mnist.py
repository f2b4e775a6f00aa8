import gzip
import hashlib
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from autoencoder.data.batches import ShuffledBatches
from autoencoder.data.idx import read_idx, read_pair
from autoencoder.data.images import ImageDataModule
from autoencoder.data.mnist import MNIST, SPLIT_FILES
from autoencoder.utils.errors import UserError
from tests.conftest import TEST_SIZE, TRAIN_SIZE, fake_digits, make_fake_mnist, write_idx


def mnist(data_dir, **kwargs) -> ImageDataModule:
    return ImageDataModule(MNIST(data_dir=str(data_dir), **kwargs))


def datamodule(data_dir, **kwargs) -> ImageDataModule:
    """A data module set up as Lightning does it: prepare_data, then setup."""
    dm = mnist(data_dir, check_md5=False, download=False, **{"val_size": 50, "batch_size": 32, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def image_ids(images: torch.Tensor) -> torch.Tensor:
    """The index each fake image (floats in [0, 1]) carries in pixels (0, 1) and (0, 2)."""
    pixels = (images[:, 0, 0, 1:3] * 255).round().long()
    return pixels[:, 0] * 256 + pixels[:, 1]


def ids(dm: ImageDataModule, split: str) -> set[int]:
    return set(image_ids(dm.split(split)[0]).tolist())


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", array)
    assert torch.equal(read_idx(tmp_path / "x"), torch.from_numpy(array))


def test_split_sizes_and_test_set_kept_apart(fake_mnist):
    dm = datamodule(fake_mnist)
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [TRAIN_SIZE - 50, 50, TEST_SIZE]
    # Pixel (0, 0) is white only in test images: none reaches train or val.
    assert dm.split("train")[0][:, 0, 0, 0].eq(0).all() and dm.split("val")[0][:, 0, 0, 0].eq(0).all()
    assert dm.split("test")[0][:, 0, 0, 0].eq(1).all()
    # Train and val partition the official training images.
    assert ids(dm, "train").isdisjoint(ids(dm, "val"))
    assert ids(dm, "train") | ids(dm, "val") == set(range(TRAIN_SIZE))
    assert ids(dm, "test") == set(range(TEST_SIZE))


def test_split_is_seeded(fake_mnist):
    a, b, c = datamodule(fake_mnist), datamodule(fake_mnist), datamodule(fake_mnist, split_seed=1)
    assert ids(a, "val") == ids(b, "val")
    assert ids(a, "val") != ids(c, "val")


def test_labels_follow_images(fake_mnist):
    images, labels = datamodule(fake_mnist).split("val")
    assert torch.equal(labels, image_ids(images) % 10)  # fake_digits cycles labels 0..9


def test_split_gives_the_pixels_of_the_file_scaled_to_unit_range(fake_mnist):
    raw, _ = fake_digits(TEST_SIZE, is_test=True, seed=1)  # what make_fake_mnist wrote for the test split
    images, _ = datamodule(fake_mnist).split("test")
    assert images.dtype == torch.float32 and images.shape == (TEST_SIZE, 1, 28, 28)
    assert torch.equal(images, torch.from_numpy(raw).float().unsqueeze(1) / 255)


def test_batches_are_floats_in_unit_range(fake_mnist):
    dm = datamodule(fake_mnist)
    raw, labels = next(iter(dm.train_dataloader()))
    x, y = dm.on_after_batch_transfer((raw, labels), 0)
    assert raw.dtype == torch.uint8 and x.dtype == torch.float32 and x.shape == (32, 1, 28, 28)
    assert torch.equal(x, raw.float() / 255) and torch.equal(y, labels)


def test_setup_leaves_fetching_the_files_to_prepare_data(tmp_path):
    dm = mnist(tmp_path, download=False)
    with pytest.raises(FileNotFoundError):
        dm.setup("fit")  # Lightning calls prepare_data first; setup only reads


def test_missing_files_without_download(tmp_path):
    with pytest.raises(UserError, match=r"MNIST files missing from .*put the four MNIST files"):
        datamodule(tmp_path)


def test_missing_files_and_no_network(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match=r"MNIST is not in .* and could not be downloaded \(\[Errno -3\] Temporary failure in name resolution\); put the four"):
        mnist(tmp_path, download=True).prepare_data()


@pytest.fixture
def mirror(tmp_path, serve):
    """An HTTP server on this machine serving the fake MNIST files gzipped, as a mirror does, and
    the md5 of each gzipped file; the mirror's URL is the fixture's first value."""
    raw = make_fake_mnist(tmp_path / "source") / "MNIST" / "raw"
    served = tmp_path / "served"
    served.mkdir()
    md5 = {}
    for name in [n for files in SPLIT_FILES.values() for n in files]:
        data = gzip.compress((raw / name).read_bytes())
        (served / f"{name}.gz").write_bytes(data)
        md5[name] = hashlib.md5(data).hexdigest()
    return serve(served), md5, raw


def test_missing_files_are_downloaded_from_the_first_mirror_that_answers(tmp_path, mirror, monkeypatch):
    url, md5, source = mirror
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:9/", url))  # port 9 (discard): nothing answers
    monkeypatch.setattr(MNIST, "gz_md5", md5)
    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)
    kept = tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    kept.write_bytes((source / kept.name).read_bytes())
    dm = mnist(tmp_path / "data", check_md5=False, val_size=50)
    dm.prepare_data()
    assert sorted(p.name for p in kept.parent.iterdir()) == sorted(n for files in SPLIT_FILES.values() for n in files)
    assert all((kept.parent / p.name).read_bytes() == p.read_bytes() for p in source.iterdir())
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [TRAIN_SIZE - 50, 50, TEST_SIZE]


def test_a_download_that_fails_its_md5_is_not_kept(tmp_path, mirror, monkeypatch):
    url, md5, _ = mirror
    monkeypatch.setattr(MNIST, "mirrors", (url,))
    monkeypatch.setattr(MNIST, "gz_md5", {**md5, "train-images-idx3-ubyte": "0" * 32})
    with pytest.raises(
        UserError, match=r"^MNIST is not in .* could not be downloaded \(http://127.0.0.1:\d+/train-images-idx3-ubyte.gz sent a file that fails its md5"
    ):
        mnist(tmp_path, download=True).prepare_data()
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "the file is truncated or corrupt"),
        (lambda b: b"\x00\x00\x09\x03" + b[4:], "bad magic number"),
        (lambda b: b"", "bad magic number empty"),
        (lambda b: b[:10], "truncated inside its header"),
    ],
)
def test_corrupt_file(tmp_path, damage, message):
    root = make_fake_mnist(tmp_path / "data")
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=message):
        datamodule(root)


def test_md5_check_rejects_unofficial_files(fake_mnist):
    with pytest.raises(UserError, match="fails its md5 check"):
        read_pair(*(fake_mnist / "MNIST" / "raw" / name for name in SPLIT_FILES["train"]), MNIST.md5)


def test_mismatched_images_and_labels(tmp_path):
    root = make_fake_mnist(tmp_path / "data")
    images, labels = fake_digits(10, False, 0)
    write_idx(root / "MNIST" / "raw" / "train-labels-idx1-ubyte", labels[:5])
    with pytest.raises(UserError, match="do not match"):
        datamodule(root)


def test_real_mnist(real_data_dir, tmp_path):
    dm = mnist(real_data_dir, download=False)  # md5 checked
    dm.prepare_data()
    dm.setup("fit")
    assert [len(dm.split(s)[1]) for s in ("train", "val", "test")] == [55_000, 5_000, 10_000]
    # In memory as uint8, never as floats: the 60k training images take 47 MB.
    held = [dataset.tensors[0] for dataset in (dm.train_set, dm.val_set)]
    assert all(t.dtype == torch.uint8 for t in held) and sum(t.nbytes for t in held) == 60_000 * 28 * 28 == 47_040_000
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (64, 1, 28, 28)  # ImageDataset's default batch_size
    assert sorted(dm.split("train")[1].unique().tolist()) == list(range(10))
    # A corrupted copy of an official file fails the md5 check.
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(real_data_dir / "MNIST" / "raw", raw)
    path = raw / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.unlink()  # the copy may be read-only, like the original
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte fails its md5 check"):
        mnist(tmp_path, download=False).split("test")


def test_class_filter_keeps_train_and_val_digits_and_the_whole_test_set(fake_mnist):
    full, only = datamodule(fake_mnist), datamodule(fake_mnist, classes=[3, 7])
    for split in ("train", "val"):
        labels = only.split(split)[1]
        assert set(labels.tolist()) == {3, 7}
        assert ids(only, split) == {i for i in ids(full, split) if i % 10 in (3, 7)}
    assert torch.equal(only.split("test")[0], full.split("test")[0])


def test_unknown_split(fake_mnist):
    with pytest.raises(UserError, match="split must be one of train, val, test, got 'validation'"):
        datamodule(fake_mnist).split("validation")


def epoch_batches(dm: ImageDataModule, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(indices into the train split, float images, labels) of each training batch of an epoch."""
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does before each epoch
    return [(index, *dm.on_after_batch_transfer(batch, 0)) for index, batch in zip(list(loader.sampler), loader, strict=True)]


def test_fast_batches_equal_torchvision_mnist_at_the_same_indices(fake_mnist):
    from torchvision.datasets import MNIST
    from torchvision.transforms import ToTensor

    reference = MNIST(str(fake_mnist), train=True, transform=ToTensor())
    dm = datamodule(fake_mnist)
    for index, images, labels in epoch_batches(dm):
        official = dm.train_index[index]  # positions in the official training file
        expected = [reference[i] for i in official.tolist()]
        assert torch.equal(images, torch.stack([image for image, _ in expected]))
        assert labels.tolist() == [label for _, label in expected]


def test_every_training_image_once_per_epoch_in_a_seeded_order(fake_mnist):
    dm = datamodule(fake_mnist, batch_size=32)
    n = len(dm.split("train")[1])
    first, again, second = (torch.cat([index for index, _, _ in epoch_batches(dm, epoch)]) for epoch in (0, 0, 1))
    assert torch.equal(first.sort().values, torch.arange(n)) and torch.equal(second.sort().values, torch.arange(n))
    assert torch.equal(first, again) and not torch.equal(first, second)  # reshuffled each epoch, the same for the same epoch
    assert not torch.equal(first, torch.cat([i for i, _, _ in epoch_batches(datamodule(fake_mnist, shuffle_seed=1))]))
    assert [len(i) for i, _, _ in epoch_batches(dm)] == [32] * (n // 32) + [n % 32]


def test_validation_and_test_batches_keep_their_order(fake_mnist):
    dm = datamodule(fake_mnist, batch_size=16)
    images = torch.cat([dm.on_after_batch_transfer(batch, 0)[0] for batch in dm.val_dataloader()])
    assert torch.equal(images, dm.split("val")[0])


def test_fast_batches_respect_the_class_filter_and_the_subset(fake_mnist):
    dm = datamodule(fake_mnist, classes=[3, 7], train_size=40)
    labels = torch.cat([y for _, _, y in epoch_batches(dm)])
    assert len(labels) == 40 and set(labels.tolist()) == {3, 7}
    full = datamodule(fake_mnist, classes=[3, 7])
    assert torch.equal(dm.train_index, full.train_index[:40])  # the subset is the start of the seeded split


def test_shuffled_batches_without_shuffle():
    batches = ShuffledBatches(10, 4, shuffle=False)
    assert len(batches) == 3 and [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_ddp_processes_take_turns_and_the_same_number_of_batches():
    shards = [list(ShuffledBatches(12, 3, shuffle=True, seed=1, rank=rank, world_size=2)) for rank in range(2)]
    assert [len(s) for s in shards] == [2, 2]
    assert sorted(torch.cat([b for s in shards for b in s]).tolist()) == list(range(12))  # every item once
    # 3 batches for 2 processes: the second wraps around to the first batch.
    uneven = [[b.tolist() for b in ShuffledBatches(10, 4, shuffle=False, rank=rank, world_size=2)] for rank in range(2)]
    assert uneven == [[[0, 1, 2, 3], [8, 9]], [[4, 5, 6, 7], [0, 1, 2, 3]]]


def test_binarize_draws_training_batches_afresh_and_evaluation_images_once(fake_mnist):
    dm = datamodule(fake_mnist, binarize=True)
    grey = datamodule(fake_mnist)
    val, again = dm.split("val")[0], datamodule(fake_mnist, binarize=True).split("val")[0]
    assert set(val.unique().tolist()) <= {0.0, 1.0} and torch.equal(val, again)  # one seeded draw
    test, test_grey = dm.split("test")[0], grey.split("test")[0]
    assert set(test.unique().tolist()) <= {0.0, 1.0}
    # Each pixel is 1 with probability its grey level: over the set, the means agree.
    assert test.mean().item() == pytest.approx(test_grey.mean().item(), abs=0.01)
    assert torch.equal(dm.split("train")[0], dm.split("train")[0])  # the probes' train images, fixed too

    class Training:  # what the data module asks of its trainer while it trains
        training, global_rank, world_size = True, 0, 1

    dm.trainer = Training()
    raw, labels = next(iter(dm.train_dataloader()))
    first, second = (dm.on_after_batch_transfer((raw, labels), 0)[0] for _ in range(2))
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)  # dynamic
