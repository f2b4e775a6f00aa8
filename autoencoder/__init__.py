"""Experiment framework for (denoising) autoencoders on MNIST: Lightning for training, Hydra for config."""

import warnings
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
CONFIG_DIR = REPO_DIR / "conf"

# Harmless notes from third-party code that would otherwise print on every run (set here, at package
# import, so that the worker processes of a parallel sweep get them too).
warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Batches are gathered from tensors in memory: worker processes would only copy the data set.
warnings.filterwarnings("ignore", message=r".*does not have many workers")
# Under DDP the epoch's train loss and speed are the first process's: syncing train/loss, which is
# also logged per step, would cost a collective every step (val and test losses are synced).
warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('(train/loss|speed/[a-z_]+)', \.\.\., sync_dist=True\)`")

import autoencoder.resolvers  # noqa: E402, F401 - the config's resolvers, needed before Hydra composes
