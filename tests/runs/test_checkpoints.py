import shutil

import pytest
import torch

from autoencoder.data.dataset import DATA_ENV
from autoencoder.runs.checkpoints import CONFIG_KEY, datamodule_for, load_trained
from autoencoder.utils.errors import UserError
from tests.conftest import make_fake_mnist


def test_checkpoint_carries_its_config_and_loads_back(trained_checkpoint):
    contents = torch.load(trained_checkpoint, weights_only=True)
    assert contents[CONFIG_KEY]["model"]["latent_dim"] == 2 and contents[CONFIG_KEY]["noise"] == 0.2
    cfg, module = load_trained(trained_checkpoint)
    assert cfg.model.latent_dim == 2 and not module.training
    assert torch.equal(module.state_dict()["net.encoder.0.weight"], contents["state_dict"]["net.encoder.0.weight"])


def test_copied_checkpoint_still_loads(trained_checkpoint, tmp_path):
    copy = tmp_path / "model.ckpt"  # away from its run folder: the embedded config is enough
    shutil.copy(trained_checkpoint, copy)
    assert load_trained(copy)[0].model.latent_dim == 2


def test_older_checkpoint_uses_the_run_folder_config(trained_checkpoint, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    contents = torch.load(trained_checkpoint, weights_only=True)
    del contents[CONFIG_KEY]
    torch.save(contents, tmp_path / "checkpoints" / "old.ckpt")
    with pytest.raises(UserError, match="carries no training config and has no run folder config.yaml"):
        load_trained(tmp_path / "checkpoints" / "old.ckpt")
    shutil.copy(trained_checkpoint.parent.parent / "config.yaml", tmp_path / "config.yaml")
    assert load_trained(tmp_path / "checkpoints" / "old.ckpt")[0].model.latent_dim == 2


class Unsafe:
    """Anything torch.load would have to unpickle as code."""


@pytest.mark.parametrize(
    "write, message",
    [
        (None, "does not exist"),
        (lambda p: p.write_text("hello"), "is not a Lightning checkpoint this framework wrote"),
        (lambda p: torch.save({"weights": torch.zeros(2)}, p), r"is not a Lightning checkpoint this framework wrote \(no state_dict\)"),
        (lambda p: torch.save({"state_dict": {}, "x": Unsafe()}, p), "would need unpickling arbitrary objects, which is refused"),
    ],
)
def test_foreign_files_are_refused(tmp_path, write, message):
    path = tmp_path / "foreign.ckpt"
    if write:
        write(path)
    with pytest.raises(UserError, match=message):
        load_trained(path)


def test_hyperparameters_that_do_not_match_the_weights(trained_checkpoint, tmp_path):
    contents = torch.load(trained_checkpoint, weights_only=True)
    contents["hyper_parameters"]["net"]["latent_dim"] = 8
    torch.save(contents, tmp_path / "edited.ckpt")
    with pytest.raises(UserError, match="edited.ckpt does not rebuild its model: .*size mismatch for net.encoder"):
        load_trained(tmp_path / "edited.ckpt")
    del contents["hyper_parameters"]
    torch.save(contents, tmp_path / "old.ckpt")
    with pytest.raises(UserError, match="old.ckpt was written by an older version of this framework"):
        load_trained(tmp_path / "old.ckpt")


def test_datamodule_for_keeps_the_split_and_drops_the_class_filter(trained_checkpoint):
    cfg, module = load_trained(trained_checkpoint)
    cfg.data.classes = [3]
    cfg.data.train_size = 10
    images, labels = datamodule_for(cfg).split("train")
    assert len(images) == 250 and set(labels.tolist()) == set(range(10))
    assert torch.equal(datamodule_for(cfg).split("val")[0], datamodule_for(cfg, {"batch_size": 7}).split("val")[0])


def test_datamodule_for_takes_the_overrides(trained_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "from_env"))  # the run's own folder wins over the variable
    cfg, _ = load_trained(trained_checkpoint)
    assert str(datamodule_for(cfg).dataset.data_dir) == cfg.data.data_dir
    assert datamodule_for(cfg, {"data_dir": str(tmp_path / "typed"), "val_size": 9}).dataset.data_dir == tmp_path / "typed"


def test_datamodule_for_another_dataset_of_the_same_shape(trained_checkpoint, tmp_path):
    cfg, _ = load_trained(trained_checkpoint)
    make_fake_mnist(tmp_path, "FashionMNIST")
    fashion = {"_target_": "autoencoder.data.mnist.FashionMNIST", "data_dir": str(tmp_path), "check_md5": False, "val_size": 20, "image_shape": [1, 28, 28]}
    dm = datamodule_for(cfg, fashion)
    assert dm.dataset.name == "FashionMNIST" and len(dm.split("val")[0]) == 20
    with pytest.raises(UserError, match=r"^data: CIFAR10's images are \[3, 32, 32\] but the model was trained on \[1, 28, 28\] images \(MNIST\); pick"):
        datamodule_for(cfg, {"_target_": "autoencoder.data.cifar.CIFAR10", "image_shape": [3, 32, 32]})


@pytest.mark.parametrize(
    "given, message",
    [
        ({"data_dri": "/x"}, r"^data.data_dri is not a setting of the run's data \(MNIST\): did you mean data.data_dir\?$"),
        ({"path": "/x"}, r"^data.path is not a setting of the run's data \(MNIST\): its keys: image_shape, data_dir, shuffle_seed, .*batch_size"),
        ({"val_size": 0}, r"^data.val_size must be an integer >= 1 or a fraction"),
    ],
)
def test_datamodule_for_refuses_what_the_run_s_data_do_not_take(trained_checkpoint, given, message):
    cfg, _ = load_trained(trained_checkpoint)
    with pytest.raises(UserError, match=message):
        datamodule_for(cfg, given)
