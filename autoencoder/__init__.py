"""Experiment framework for (denoising) autoencoders: Lightning for training, Hydra for config.

The commands (`python -m autoencoder.<command>`) are the modules at this level; the library is in
the subpackages: data, models, training, evaluation, sweeps, config and utils.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
CONFIG_DIR = REPO_DIR / "conf"

import autoencoder.config.resolvers  # noqa: E402, F401 - the config's resolvers, needed before Hydra composes
