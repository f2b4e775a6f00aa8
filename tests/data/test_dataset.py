import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from autoencoder.data.dataset import RENAMED, check_files, renamed_data_classes
from autoencoder.data.images import data_module
from autoencoder.utils.errors import UserError
from tests.conftest import TRAIN_SIZE

LIGHT = """
import sys
from omegaconf import OmegaConf
from autoencoder.data.dataset import check_files
from autoencoder.utils.errors import UserError
try:
    check_files(OmegaConf.create({"_target_": "autoencoder.data.mnist.MNIST", "data_dir": sys.argv[1], "download": False}))
except UserError as exc:
    print(exc)
print(sorted(m for m in ("torch", "lightning", "torchvision") if m in sys.modules))
"""


def test_missing_files_are_found_without_loading_torch(tmp_path):
    result = subprocess.run([sys.executable, "-c", LIGHT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines() == [
        f"MNIST files missing from {tmp_path}/MNIST/raw: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte; put the four MNIST files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte) in {tmp_path}/MNIST/raw or set AUTOENCODER_DATA_DIR to a folder holding MNIST/raw/",
        "[]",
    ], result.stderr[-2000:]


def test_check_files_validates_the_settings_first(fake_mnist):
    data = OmegaConf.create({"_target_": "autoencoder.data.mnist.MNIST", "data_dir": str(fake_mnist), "batch_size": 0})
    with pytest.raises(UserError, match=r"^data.batch_size must be an integer >= 1, got 0$"):
        check_files(data)
    data.batch_size = 8
    assert check_files(data).batch_size == 8


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_a_run_config_naming_an_old_data_class_builds_its_dataset(old):
    cfg = renamed_data_classes(OmegaConf.create({"data": {"_target_": old, "val_size": 5}, "seed": 1}))
    assert cfg.data._target_ == RENAMED[old] and cfg.seed == 1


def test_an_old_mnist_run_config_reads_the_same_images(fake_mnist):
    old = OmegaConf.create({"data": {"_target_": "autoencoder.data.mnist.MNISTDataModule", "data_dir": str(fake_mnist), "check_md5": False, "val_size": 50}})
    images, _ = data_module(renamed_data_classes(old).data).split("train")
    assert len(images) == TRAIN_SIZE - 50
