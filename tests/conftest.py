"""Shared fixtures: tiny MNIST-format data written by the tests, and configs composed with Hydra."""

import os
import struct
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, open_dict

from autoencoder.data.dataset import DATA_ENV
from autoencoder.utils.cli import load_config

TRAIN_SIZE, TEST_SIZE = 300, 60


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the MNIST files."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def fake_digits(n: int, is_test: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 images with labels 0..9 cycling. Each image is a blurry bar whose position follows
    the label (so there is something to learn); pixel (0, 0) holds 255 for test images, 0 for
    training ones, and pixels (0, 1), (0, 2) hold the image's index."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, label in enumerate(labels):
        images[i, 4:24, 2 + 2 * label : 6 + 2 * label] = 220
    images[:, 0, 0] = 255 if is_test else 0
    images[:, 0, 1], images[:, 0, 2] = np.arange(n) // 256, np.arange(n) % 256
    return images.astype(np.uint8), labels.astype(np.uint8)


def make_fake_mnist(root: Path, folder: str = "MNIST") -> Path:
    """A data_dir holding <folder>/raw/ with the fake images in MNIST's IDX files."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for n, is_test, prefix in ((TRAIN_SIZE, False, "train"), (TEST_SIZE, True, "t10k")):
        images, labels = fake_digits(n, is_test, seed=int(is_test))
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory) -> Path:
    """A data_dir holding MNIST/raw/ with 300 training and 60 test images."""
    return make_fake_mnist(tmp_path_factory.mktemp("fake_mnist"))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The official MNIST files, when the data variable points at them (CI and the Makefile set it)."""
    path = os.environ.get(DATA_ENV)
    if not path or not (Path(path) / "MNIST" / "raw").is_dir():
        pytest.skip(f"{DATA_ENV} does not point at the official MNIST files")
    return Path(path)


@pytest.fixture
def serve():
    """`serve(folder)` serves the files of `folder` over HTTP on this machine, as a dataset's mirror
    does, and gives its URL (ending in /); the servers stop with the test."""
    servers = []

    def _serve(folder: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield _serve
    for server in servers:
        server.shutdown()
        server.server_close()


# Small, fast settings for end-to-end runs on the fake data.
FAST = [
    "data.val_size=50",
    "data.batch_size=32",
    "data.check_md5=false",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
]


@pytest.fixture
def make_cfg(tmp_path, fake_mnist):
    """Compose the project's config with overrides, writing into tmp_path, on the fake data."""

    def _make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        cfg = load_config("config", [f"data.data_dir={fake_mnist}", *FAST, *overrides])
        with open_dict(cfg):
            cfg.output_dir = str(output_dir or tmp_path / "run")
        return cfg

    return _make


def run_module(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m <args>` as a user would: the installed package, started from `cwd`."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def train_briefly(data_dir: Path, output_dir: Path, *overrides: str) -> Path:
    """The best checkpoint of a run trained for a few batches (FAST) on the fake data in `data_dir`."""
    from autoencoder.training.run import train

    cfg = load_config("config", [f"data.data_dir={data_dir}", *FAST, "logger=none", *overrides])
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)
    return Path(train(cfg)["best_checkpoint"])


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, fake_mnist) -> Path:
    """The best checkpoint of a latent-2 denoising run trained for a few batches on the fake data."""
    return train_briefly(fake_mnist, tmp_path_factory.mktemp("trained"), "model.latent_dim=2", "noise=0.2")


@pytest.fixture(scope="session")
def vq_checkpoint(tmp_path_factory, fake_mnist) -> Path:
    """The best checkpoint of a VQ-VAE (8-dim codes on a 7x7 grid, 16 of them) trained for a few batches on the fake data."""
    return train_briefly(fake_mnist, tmp_path_factory.mktemp("vq"), "variant=vqvae", "model.latent_dim=8", "variant.codebook_size=16")


def compose_entry(config_name: str, output_dir: Path, *overrides: str) -> DictConfig:
    """Compose one of the entry points' configs (evaluate, encode, anomaly) writing to output_dir."""
    cfg = load_config(config_name, list(overrides))
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)
    return cfg
