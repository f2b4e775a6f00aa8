"""CIFAR-10 from fake batch files in the official format: the split and labels, classes by name,
grayscale, the md5 and structure checks, a pickle that would run code, missing files, and the
model built for the data, trained and evaluated end to end."""

import hashlib
import os
import pickle
import re
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from autoencoder import CONFIG_DIR
from autoencoder.data import cifar as cifar_module
from autoencoder.data.cifar import CIFAR10, FOLDER, META, SPLIT_FILES
from autoencoder.data.images import ImageDataModule
from autoencoder.evaluation.evaluate import evaluate
from autoencoder.models.networks import ConvAutoencoder
from autoencoder.models.sizes import describe_configured
from autoencoder.runs.checkpoints import CONFIG_KEY
from autoencoder.training.run import train
from autoencoder.utils.errors import UserError
from tests.conftest import compose_entry
from tests.data.test_datasets import datamodule
from tests.data.test_mnist import image_ids
from tests.evaluation.test_evaluate import SMALL

BATCH_SIZE, TEST_SIZE = 100, 60  # images in each of the five training batches, and in test_batch
TRAIN_SIZE = 5 * BATCH_SIZE
KNOWN = {(31, 31): ((200, 100, 50), 124), (31, 30): ((0, 0, 250), 29)}  # (row, col): RGB and its luma (28.5 rounds up)


def fake_images(first: int, n: int, is_test: bool) -> tuple[np.ndarray, np.ndarray]:
    """n 3x32x32 images with indices first.. and labels index % 10. Each is noise with a bar whose
    colour and column follow the label; pixel (0, 0) is white in test images, black in training
    ones, pixels (0, 1), (0, 2) hold the index, all three grey so that the luma keeps them; the
    pixels in KNOWN have their colour."""
    rng = np.random.default_rng(first + 1000 * is_test)
    index = np.arange(first, first + n)
    labels = index % 10
    images = rng.integers(0, 40, size=(n, 3, 32, 32))
    for i, label in enumerate(labels):
        images[i, label % 3, 4:28, 2 + 2 * label : 6 + 2 * label] = 220
    images[:, :, 0, 0] = 255 if is_test else 0
    images[:, :, 0, 1], images[:, :, 0, 2] = (index // 256)[:, None], (index % 256)[:, None]
    for (row, col), (rgb, _) in KNOWN.items():
        images[:, :, row, col] = rgb
    return images.astype(np.uint8), labels


def write_pickle(path: Path, content: object) -> None:
    path.write_bytes(pickle.dumps(content, protocol=2))


def make_fake_cifar(root: Path) -> Path:
    """A data_dir holding cifar-10-batches-py/ with five training batches of 100 images and a test
    batch of 60, pickled as the official files are (dicts with bytes keys, data (N, 3072) uint8)."""
    folder = root / FOLDER
    folder.mkdir(parents=True)
    batches = [(name, i * BATCH_SIZE, BATCH_SIZE, False) for i, name in enumerate(SPLIT_FILES["train"])] + [("test_batch", 0, TEST_SIZE, True)]
    for name, first, n, is_test in batches:
        images, labels = fake_images(first, n, is_test)
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": images.reshape(n, -1), b"filenames": [b"x.png"] * n}
        write_pickle(folder / name, batch)
    write_pickle(folder / META, {b"num_cases_per_batch": BATCH_SIZE, b"label_names": [n.encode() for n in CIFAR10.class_names], b"num_vis": 3072})
    return root


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory) -> Path:
    return make_fake_cifar(tmp_path_factory.mktemp("fake_cifar"))


def cifar(data_dir: Path, **kwargs) -> ImageDataModule:
    return ImageDataModule(CIFAR10(data_dir=str(data_dir), **{"download": False, "val_size": 50, "check_md5": False, **kwargs}))


def test_reads_the_batches_with_labels_and_the_split(fake_cifar):
    dm = datamodule("cifar10", fake_cifar)
    assert type(dm.dataset) is CIFAR10 and dm.dataset.raw_dir == fake_cifar / FOLDER and dm.dataset.image_shape == (3, 32, 32)
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [TRAIN_SIZE - 50, 50, TEST_SIZE]
    ids = {s: image_ids(dm.split(s)[0]) for s in ("train", "val", "test")}
    assert set(ids["train"].tolist()).isdisjoint(ids["val"].tolist())  # train and val partition the five batches
    assert set(ids["train"].tolist()) | set(ids["val"].tolist()) == set(range(TRAIN_SIZE))
    assert sorted(ids["test"].tolist()) == list(range(TEST_SIZE))
    for s in ("train", "val", "test"):
        images, labels = dm.split(s)
        assert torch.equal(labels, ids[s] % 10) and images[:, :, 0, 0].eq(s == "test").all()
    assert all(dataset.tensors[0].dtype == torch.uint8 for dataset in (dm.train_set, dm.val_set, dm.test_set))
    expected, _ = fake_images(0, TEST_SIZE, is_test=True)
    assert torch.equal(dm.split("test")[0], torch.from_numpy(expected).float() / 255)  # the planes of each row are R, G, B


def test_classes_by_name(fake_cifar):
    dm = datamodule("cifar10", fake_cifar, "data.classes=[cat,ship]")
    assert dm.dataset.classes == [3, 8]
    assert set(dm.split("train")[1].tolist()) == set(dm.split("val")[1].tolist()) == {3, 8}
    assert set(dm.split("test")[1].tolist()) == set(range(10))  # the test set keeps every class
    with pytest.raises(UserError, match=r"data.classes: 'cats' is not a class of CIFAR10 \(its classes: 0 airplane, 1 automobile, .*9 truck"):
        cifar(fake_cifar, classes=["cats"])


def test_grayscale_is_the_rounded_luma(fake_cifar):
    dm = datamodule("cifar10", fake_cifar, "data.grayscale=true")
    assert dm.dataset.image_shape == (1, 32, 32) and dm.test_set.tensors[0].dtype == torch.uint8
    images, labels = dm.split("test")
    assert images.shape == (TEST_SIZE, 1, 32, 32) and torch.equal(labels, image_ids(images) % 10)  # the grey index pixels survive
    for (row, col), (_, luma) in KNOWN.items():
        assert images[:, 0, row, col].mul(255).round().eq(luma).all()
    rgb, _ = fake_images(0, TEST_SIZE, is_test=True)
    exact = np.tensordot(np.array([0.299, 0.587, 0.114]), rgb.astype(np.float64), axes=([0], [1]))
    assert np.abs(images[:, 0].mul(255).round().numpy() - exact).max() <= 0.5 + 1e-9


def test_md5_of_each_file(tmp_path, monkeypatch, fake_cifar):
    with pytest.raises(UserError, match=r"batches.meta fails its md5 check \(\w+, expected 5ff9c542aee3614f3951f8cda6e48888\)"):
        cifar(fake_cifar, check_md5=True).split("test")  # the official md5: the fake files are not the official ones
    folder = make_fake_cifar(tmp_path) / FOLDER
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    monkeypatch.setattr(CIFAR10, "md5", md5)
    assert len(cifar(tmp_path, check_md5=True).split("train")[0]) == TRAIN_SIZE - 50
    path = folder / "data_batch_3"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=rf"^{path} fails its md5 check \(\w+, expected {md5['data_batch_3']}\): the file is corrupt; delete it"):
        cifar(tmp_path, check_md5=True).split("train")


class RunsACommand:
    """Unpickled by plain pickle, this runs a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    folder = make_fake_cifar(tmp_path / "data") / FOLDER
    marker = tmp_path / "ran"
    path = folder / "data_batch_2"
    write_pickle(path, {b"data": RunsACommand(f"touch {marker}"), b"labels": []})
    with pytest.raises(UserError) as info:
        cifar(tmp_path / "data").split("train")
    assert re.fullmatch(
        rf"{path} asks to load (os|posix)\.system, which a CIFAR-10 file never holds; refused: replace it with the official file", str(info.value)
    )
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # what plain pickle would have done
    assert marker.exists()


def truncated(b: bytes) -> bytes:
    return b[: len(b) // 2]


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("data_batch_1", truncated, r"data_batch_1 cannot be unpickled \(.*\): the file is truncated or corrupt; replace it"),
        ("test_batch", lambda b: b"garbage!" + b[8:], r"test_batch cannot be unpickled \(.*\): the file is truncated or corrupt"),
        ("data_batch_5", lambda b: b"", r"data_batch_5 cannot be unpickled \(.*\): the file is truncated"),
        (META, truncated, r"batches.meta cannot be unpickled"),
        ("data_batch_4", lambda b: pickle.dumps([1, 2], protocol=2), r"data_batch_4 is not a CIFAR-10 file \(it lacks data, labels\)"),
        (
            "data_batch_4",
            lambda b: pickle.dumps({b"data": np.zeros((5, 3072), np.uint8)}, protocol=2),
            r"data_batch_4 is not a CIFAR-10 file \(it lacks labels\)",
        ),
        (
            "data_batch_2",
            lambda b: pickle.dumps({b"data": np.zeros((5, 3000), np.uint8), b"labels": [0] * 5}, protocol=2),
            r"data_batch_2 holds data ndarray \[5, 3000\] of uint8, not uint8 images \(N, 3072\)",
        ),
        ("data_batch_2", lambda b: pickle.dumps({b"data": np.zeros((5, 3072)), b"labels": [0] * 5}, protocol=2), r"holds data ndarray \[5, 3072\] of float64"),
        (
            "data_batch_3",
            lambda b: pickle.dumps({b"data": np.zeros((5, 3072), np.uint8), b"labels": [0, 1, 10, 2, 3]}, protocol=2),
            r"not hold one label in 0..9",
        ),
        ("data_batch_3", lambda b: pickle.dumps({b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 4}, protocol=2), r"for each of its 5 images"),
        (
            META,
            lambda b: pickle.dumps({b"label_names": [b"apple", b"fish"]}, protocol=2),
            r"batches.meta names the classes \['apple', 'fish'\], not CIFAR-10's",
        ),
    ],
)
def test_a_damaged_file_is_one_line_naming_it(tmp_path, name, damage, message):
    path = make_fake_cifar(tmp_path) / FOLDER / name
    path.write_bytes(damage(path.read_bytes()))
    dm = cifar(tmp_path)
    with pytest.raises(UserError, match=message) as info:
        dm.split("train" if name != "test_batch" else "test")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_files_without_download(tmp_path):
    folder = tmp_path / FOLDER
    source = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    where = rf"put the seven CIFAR-10 files \(data_batch_1, .*, batches.meta\) in {folder} \(unpack {source} in {tmp_path}\)"
    with pytest.raises(
        UserError,
        match=rf"^CIFAR-10 files missing from {folder}: data_batch_1, data_batch_2, .*, test_batch, batches.meta; {where} or set AUTOENCODER_DATA_DIR",
    ):
        cifar(tmp_path).prepare_data()
    make_fake_cifar(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(UserError, match=rf"^CIFAR-10 files missing from {folder}: test_batch; put the seven"):
        cifar(tmp_path).prepare_data()


def test_missing_files_and_no_network(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        UserError,
        match=r"^CIFAR-10 is not in .*cifar-10-batches-py and could not be downloaded \(\[Errno -3\] Temporary failure in name resolution\); put the seven",
    ):
        cifar(tmp_path, download=True).prepare_data()


def test_missing_files_are_unpacked_from_the_downloaded_archive(tmp_path, monkeypatch, serve):
    make_fake_cifar(tmp_path / "source")
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "source" / FOLDER, arcname=FOLDER)
    served = serve(archive.parent)
    monkeypatch.setattr(cifar_module, "SOURCE", f"{served}{archive.name}")
    monkeypatch.setattr(cifar_module, "SOURCE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    dm = cifar(tmp_path / "data", download=True)
    dm.prepare_data()
    assert sorted(p.name for p in (tmp_path / "data" / FOLDER).iterdir()) == sorted(p.name for p in (tmp_path / "source" / FOLDER).iterdir())
    assert len(dm.split("test")[0]) == TEST_SIZE


@pytest.mark.parametrize("grayscale, size", [(False, "3x32x32"), (True, "1x32x32")])
def test_the_model_is_built_for_the_images(grayscale, size):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="shapes", overrides=["data=cifar10", f"data.grayscale={str(grayscale).lower()}"])
    assert isinstance(instantiate(cfg.model), ConvAutoencoder) and list(cfg.model.input_shape) == [1 if grayscale else 3, 32, 32]
    assert describe_configured(cfg)[-1] == f"output {size} equals input {size}"


@pytest.mark.slow
@pytest.mark.parametrize("grayscale", [False, True])
def test_train_and_evaluate(make_cfg, fake_cifar, tmp_path, grayscale):
    metrics = train(make_cfg("data=cifar10", f"data.data_dir={fake_cifar}", f"data.grayscale={str(grayscale).lower()}", "logger=none"))
    assert metrics["status"] == "completed" and metrics["test_loss"] is not None
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert checkpoint[CONFIG_KEY]["data"]["grayscale"] is grayscale
    grid = np.array(Image.open(Path(metrics["best_checkpoint"]).parents[1] / "reconstructions.png"))
    assert bool((grid[..., 0] != grid[..., 1]).any()) is not grayscale  # the image grids are in colour where the data are
    result = evaluate(compose_entry("evaluate", tmp_path / "evaluation", f"ckpt_path={metrics['best_checkpoint']}", *SMALL))
    assert result["reconstruction"]["mse"] > 0 and list(result["reconstruction"]["mse_per_class"]) == list(CIFAR10.class_names)
    assert f"| class | {' | '.join(CIFAR10.class_names)} |" in (tmp_path / "evaluation" / "evaluation.md").read_text()
