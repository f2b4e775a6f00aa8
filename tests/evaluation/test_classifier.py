"""The feature classifier: trained deterministically, cached beside the data under its weights'
sha256, refused when its file no longer matches, and built or reported by its command."""

import json
import logging

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from autoencoder import CONFIG_DIR
from autoencoder.data.mnist import MNIST, FashionMNIST
from autoencoder.evaluation import classifier as module
from autoencoder.evaluation.classifier import FEATURES, build, build_command, cache_folder, classifier, feature_classifier, load
from autoencoder.utils.cli import load_config
from autoencoder.utils.errors import UserError
from tests.conftest import make_fake_mnist

SHAPE = (1, 28, 28)


@pytest.fixture
def dataset(tmp_path):
    """The fake MNIST in a folder of the test's own, where its classifier is cached."""
    return MNIST(data_dir=str(make_fake_mnist(tmp_path / "data")), check_md5=False)


def test_the_same_seed_gives_the_same_weights_and_another_seed_others(dataset, tmp_path):
    _, first = build(dataset)
    again = MNIST(data_dir=str(make_fake_mnist(tmp_path / "again")), check_md5=False)
    assert build(again)[1]["sha256"] == first["sha256"]
    assert build(again, seed=1)[1]["sha256"] != first["sha256"]
    assert first["settings"] == {"seed": 0, "epochs": 2, "batch_size": 128, "lr": 1e-2, "train_images": 300}
    assert first["command"] == f"python -m autoencoder.classifier data=mnist data.data_dir={tmp_path / 'data'} seed=0 epochs=2"
    assert 0 <= first["test_accuracy"] <= 1 and first["image_shape"] == list(SHAPE) and first["classes"] == 10


def test_a_cached_classifier_is_loaded_with_its_weights(dataset, monkeypatch):
    assert load(dataset, SHAPE) is None  # a miss
    net, manifest = build(dataset)
    assert json.loads((cache_folder(dataset) / "1x28x28.json").read_text()) == manifest
    assert (cache_folder(dataset) / f"{manifest['sha256']}.pt").is_file() and cache_folder(dataset).parent.name == "MNIST"
    monkeypatch.setattr(module, "build", lambda *args: pytest.fail("a cached classifier was trained again"))
    cached, cached_manifest = feature_classifier(dataset, SHAPE)  # a hit
    images = torch.rand(5, *SHAPE)
    assert cached_manifest == manifest and torch.equal(cached.features(images), net.features(images))
    assert cached.features(images).shape == (5, FEATURES)


def test_weights_that_do_not_match_their_manifest_are_refused_in_one_line(dataset):
    manifest = build(dataset)[1]
    weights = cache_folder(dataset) / manifest["weights"]
    weights.write_bytes(weights.read_bytes()[:-1] + b"!")
    rebuild = "rebuild it with `python -m autoencoder.classifier data=mnist data.data_dir="
    with pytest.raises(UserError, match=rf"^the feature classifier .* is corrupt: .*; {rebuild}"):
        load(dataset, SHAPE)
    weights.unlink()
    with pytest.raises(UserError, match=r"^the feature classifier's manifest .*1x28x28.json or its weights cannot be read"):
        load(dataset, SHAPE)


def test_the_message_names_the_datasets_own_option():
    assert build_command(FashionMNIST(data_dir="/data")) == "python -m autoencoder.classifier data=fashion_mnist data.data_dir=/data"


def test_the_command_trains_then_reports_the_cached_one_and_replaces_a_damaged_one(dataset, caplog):
    caplog.set_level(logging.INFO, logger=module.__name__)
    cfg = load_config("classifier", [f"data.data_dir={dataset.data_dir}", "data.check_md5=false"])
    with open_dict(cfg):
        cfg.output_dir = "unused"
    trained = classifier(cfg)
    assert "training the feature classifier of MNIST" in caplog.text
    caplog.clear()
    assert classifier(cfg) == trained and "is cached" in caplog.text and "training" not in caplog.text
    (cache_folder(dataset) / trained["weights"]).write_bytes(b"damaged")
    assert classifier(cfg)["sha256"] == trained["sha256"] and "is corrupt" in caplog.text  # trained again, the same weights
    cfg.epochs = 1
    assert classifier(cfg)["settings"]["epochs"] == 1  # another recipe replaces it


def test_the_commands_defaults_are_what_an_evaluation_trains_with():
    config = OmegaConf.load(CONFIG_DIR / "classifier.yaml")
    assert (config.seed, config.epochs) == (module.SEED, module.EPOCHS)
