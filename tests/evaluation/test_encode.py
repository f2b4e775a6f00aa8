import numpy as np
import pytest

from autoencoder.evaluation.encode import encode
from tests.conftest import TEST_SIZE, compose_entry, run_module


@pytest.mark.parametrize("split, size", [("test", TEST_SIZE), ("val", 50), ("train", 250)])
def test_encode_writes_codes_and_labels(trained_checkpoint, fake_mnist, tmp_path, split, size):
    codes_path, labels_path = encode(compose_entry("encode", tmp_path, f"ckpt_path={trained_checkpoint}", f"data_dir={fake_mnist}", f"split={split}"))
    codes, labels = np.load(codes_path), np.load(labels_path)
    assert codes_path.name == f"{split}_codes.npy" and codes.shape == (size, 2) and codes.dtype == np.float32
    assert labels.shape == (size,) and set(labels.tolist()) == set(range(10))


@pytest.mark.slow
def test_encode_command_line(trained_checkpoint, fake_mnist, tmp_path):
    result = run_module("autoencoder.encode", f"ckpt_path={trained_checkpoint}", f"data_dir={fake_mnist}", f"hydra.run.dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.load(tmp_path / "out" / "test_codes.npy").shape == (TEST_SIZE, 2)

    result = run_module("autoencoder.encode", f"ckpt_path={trained_checkpoint}", f"data_dir={fake_mnist}", "split=holdout", cwd=tmp_path)
    assert result.returncode == 2 and "error: split must be one of train, val, test, got 'holdout'" in result.stderr
    assert "Traceback" not in result.stderr
