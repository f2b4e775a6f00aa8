"""The datasets in MNIST's format (MNIST, Fashion-MNIST, KMNIST): each is read from its own folder
of IDX files, takes its classes by name or label, and trains and evaluates end to end."""

import shutil

import pytest
import torch

from autoencoder.data.dataset import DATA_ENV
from autoencoder.data.images import ImageDataModule, data_module
from autoencoder.data.mnist import KMNIST, MNIST, FashionMNIST
from autoencoder.evaluation.evaluate import evaluate
from autoencoder.runs.checkpoints import CONFIG_KEY
from autoencoder.training.run import train
from autoencoder.utils.cli import load_config
from autoencoder.utils.errors import UserError
from tests.conftest import TEST_SIZE, TRAIN_SIZE, compose_entry, make_fake_mnist, train_briefly
from tests.data.test_mnist import image_ids
from tests.evaluation.test_evaluate import SMALL

DATASETS = {"mnist": ("MNIST", MNIST), "fashion_mnist": ("FashionMNIST", FashionMNIST), "kmnist": ("KMNIST", KMNIST)}


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """One data_dir with the fake images under each dataset's folder."""
    root = tmp_path_factory.mktemp("fake_datasets")
    for folder, _ in DATASETS.values():
        make_fake_mnist(root, folder)
    return root


def datamodule(name: str, data_dir, *overrides: str):
    cfg = load_config("config", [f"data={name}", f"data.data_dir={data_dir}", "data.check_md5=false", "data.val_size=50", *overrides])
    dm = data_module(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("name", DATASETS)
def test_each_dataset_reads_its_own_folder_with_the_split_and_labels(fake_data, tmp_path, name):
    folder, cls = DATASETS[name]
    dm = datamodule(name, fake_data)
    assert type(dm.dataset) is cls and dm.dataset.raw_dir == fake_data / folder / "raw"
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [TRAIN_SIZE - 50, 50, TEST_SIZE]
    images, labels = dm.split("val")
    assert torch.equal(labels, image_ids(images) % 10)  # the fake images cycle labels 0..9
    with pytest.raises(UserError, match=rf"{folder} files missing from {tmp_path}/{folder}/raw: .*put the four {folder} files"):
        datamodule(name, tmp_path, "data.download=false")


@pytest.mark.parametrize(
    "name, classes, labels",
    [("mnist", "[3,'7']", [3, 7]), ("fashion_mnist", "[sneaker,Ankle_boot,'T-shirt/top']", [0, 7, 9]), ("kmnist", "[tsu,0]", [0, 3])],
)
def test_classes_by_name_or_label(fake_data, name, classes, labels):
    dm = datamodule(name, fake_data, f"data.classes={classes}")
    assert dm.dataset.classes == labels and sorted(set(dm.split("train")[1].tolist())) == labels


def test_a_class_that_does_not_exist(fake_data):
    with pytest.raises(UserError, match=r"data.classes: 'boots' is not a class of FashionMNIST \(its classes: 0 T-shirt/top, 1 Trouser, .*9 Ankle boot"):
        FashionMNIST(data_dir=str(fake_data), classes=["boots"])
    with pytest.raises(UserError, match=r"data.classes: 10 is not a class of MNIST \(its classes: 0, 1, 2"):
        MNIST(data_dir=str(fake_data), classes=[10])


@pytest.mark.parametrize("name", ["fashion_mnist", "kmnist"])
def test_train_and_evaluate_on_each_dataset(make_cfg, fake_data, tmp_path, name):
    metrics = train(make_cfg(f"data={name}", f"data.data_dir={fake_data}", "logger=none"))
    assert metrics["status"] == "completed" and metrics["test_loss"] is not None
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert checkpoint[CONFIG_KEY]["data"]["data_dir"] == str(fake_data)
    result = evaluate(compose_entry("evaluate", tmp_path / "evaluation", f"ckpt_path={metrics['best_checkpoint']}", *SMALL))
    assert result["reconstruction"]["mse"] > 0 and (tmp_path / "evaluation" / "evaluation.json").is_file()
    names = DATASETS[name][1].class_names
    assert list(result["reconstruction"]["mse_per_class"]) == list(names)  # the tables name the classes
    assert f"| class | {' | '.join(names)} |" in (tmp_path / "evaluation" / "evaluation.md").read_text()


@pytest.fixture(scope="module")
def real_fashion_mnist():
    import os
    from pathlib import Path

    path = os.environ.get(DATA_ENV)
    if not path or not (Path(path) / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"{DATA_ENV} does not point at the official Fashion-MNIST files")
    return Path(path)


def test_real_fashion_mnist(real_fashion_mnist, tmp_path):
    dm = ImageDataModule(FashionMNIST(data_dir=str(real_fashion_mnist), download=False))  # md5 checked
    dm.prepare_data()
    dm.setup("fit")
    assert [len(dm.split(s)[1]) for s in ("train", "val", "test")] == [55_000, 5_000, 10_000]
    train_labels = torch.cat([dm.split("train")[1], dm.split("val")[1]])
    assert torch.bincount(train_labels).tolist() == [6000] * 10 and torch.bincount(dm.split("test")[1]).tolist() == [1000] * 10
    assert all(dataset.tensors[0].dtype == torch.uint8 for dataset in (dm.train_set, dm.val_set, dm.test_set))
    raw = tmp_path / "FashionMNIST" / "raw"  # a corrupted copy of an official file fails its md5 check
    shutil.copytree(real_fashion_mnist / "FashionMNIST" / "raw", raw)
    path = raw / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[200] ^= 1
    path.unlink()
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="train-labels-idx1-ubyte fails its md5 check"):
        ImageDataModule(FashionMNIST(data_dir=str(tmp_path), download=False)).split("train")


@pytest.mark.parametrize("name", ["fashion_mnist", "kmnist"])
def test_a_binarised_vae_gets_its_likelihood_on_each_dataset(fake_data, tmp_path, name):
    checkpoint = train_briefly(fake_data, tmp_path / "run", f"data={name}", "variant=vae", "loss=bce", "data.binarize=true")
    others = [f"~measures.{m}" for m in ("reconstruction", "denoising", "latent", "features", "generation", "anomaly", "restoration")]
    result = evaluate(compose_entry("evaluate", tmp_path / "evaluation", f"ckpt_path={checkpoint}", "likelihood.samples=20", *others))
    figures = result["likelihood"]
    # Binary images have probabilities: -log p(x) is positive, and the bound with 20 samples is
    # about the ELBO's or tighter (its one-sample estimate varies, so with some slack).
    assert figures["samples"] == 20 and not {"reconstruction", "generation"} & set(result)
    assert 0 < figures["nll_nats"] < figures["negative_elbo_nats"] + 5
