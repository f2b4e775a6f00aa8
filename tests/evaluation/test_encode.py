import numpy as np
import pytest
import torch

from autoencoder.evaluation.encode import encode
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from tests.conftest import TEST_SIZE, compose_entry, run_module


@pytest.mark.parametrize("split, size", [("test", TEST_SIZE), ("val", 50), ("train", 250)])
def test_encode_writes_the_codes_of_the_split_with_their_labels(trained_checkpoint, fake_mnist, tmp_path, split, size):
    cfg = compose_entry("encode", tmp_path, f"ckpt_path={trained_checkpoint}", f"split={split}")
    codes_path, labels_path = encode(cfg, {"data_dir": str(fake_mnist)})
    codes, labels = np.load(codes_path), np.load(labels_path)
    assert codes_path.name == f"{split}_codes.npy" and codes.dtype == np.float32
    run_cfg, module = load_trained(trained_checkpoint)
    images, expected_labels = datamodule_for(run_cfg, {"data_dir": str(fake_mnist)}).split(split)
    with torch.no_grad():
        expected = module.net.encode(images)
    assert codes.shape == (size, 2) and np.allclose(codes, expected.numpy(), atol=1e-6)
    assert np.array_equal(labels, expected_labels.numpy())


@pytest.mark.slow
def test_encode_command_line(trained_checkpoint, fake_mnist, tmp_path):
    result = run_module("autoencoder.encode", f"ckpt_path={trained_checkpoint}", f"data.data_dir={fake_mnist}", f"hydra.run.dir={tmp_path}/out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.load(tmp_path / "out" / "test_codes.npy").shape == (TEST_SIZE, 2)

    result = run_module("autoencoder.encode", f"ckpt_path={trained_checkpoint}", f"data.data_dir={fake_mnist}", "split=holdout", cwd=tmp_path)
    assert result.returncode == 2 and "error: split must be one of train, val, test, got 'holdout'" in result.stderr
    assert "Traceback" not in result.stderr
