"""Experiment framework for (denoising) autoencoders on MNIST: Lightning for training, Hydra for config."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
CONFIG_DIR = REPO_DIR / "conf"

import autoencoder.resolvers  # noqa: E402, F401 - the config's resolvers, needed before Hydra composes
