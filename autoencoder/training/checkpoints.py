"""Checkpoints written by a training run: the run's config in each (read back by
autoencoder.runs.checkpoints), epochs in file names counted from 1, atomic writes, and the random
states that let a resumed run go on exactly."""

import io
import random

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from autoencoder.runs.checkpoints import CONFIG_KEY
from autoencoder.utils.files import write_atomic


class ConfigInCheckpoint(L.Callback):
    """Stores the resolved run config in every checkpoint: with it the file alone tells evaluate,
    encode and anomaly the module's class and rebuilds the run's data module, split included."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CONFIG_KEY] = self.config


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint with `{epoch}` in file names counted from 1, as the console's
    `[Epoch   4]` lines, metrics.json and the figures count: `best-epoch004.ckpt` holds the model
    of epoch 4 (checkpoints named from 0 before load as ever); and with `save_last`, last.ckpt
    written at the end of every epoch. Lightning 2.6 writes it only with a new best one, so a run
    whose validation loss stopped falling went on, when resumed, from its best epoch instead of
    its last one and trained the epochs since again."""

    @override
    def format_checkpoint_name(self, metrics: dict, filename: str | None = None, ver: int | None = None, prefix: str | None = None) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_unless_saved(trainer)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_unless_saved(trainer)

    def _save_last_unless_saved(self, trainer: L.Trainer) -> None:
        """last.ckpt, unless a checkpoint was written at this step already (Lightning's own check
        also skips the sanity check and anything but fitting)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written like every other file of a run (autoencoder.utils.files): to a
    temporary file in the checkpoint's own folder, flushed, then renamed into place. Lightning's
    own writer stages the file in the system's temporary folder, so a full disk left a truncated
    checkpoint under its real name and an error naming /tmp."""

    @override
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(path, buffer.getbuffer())


def _rng_states() -> dict:
    """Every RNG state as tensors and plain values, which checkpoints read with weights_only can hold."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


class ResumeExactly(L.Callback):
    """What a checkpoint needs beyond Lightning's own for a resumed run to be the run left alone:
    the RNG states (the training noise draws from torch's global RNG), restored when training
    restarts, and the training loader's place in its epoch.

    Lightning saves the loader's place (ResumableLoader's `state_dict`) with the fit loop but only
    hands it back to a loader it has not built yet, and a per-step schedule has it build the
    loader early (for the run's length); so it is handed back here, before the epoch's first batch
    is drawn."""

    def __init__(self) -> None:
        self.rng: dict | None = None
        self.loader_states: list[dict] = []

    @override
    def state_dict(self) -> dict:
        return {"rng": _rng_states()}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.rng = state_dict.get("rng")

    @override
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.loader_states = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader", [])

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.rng is not None:
            _set_rng_states(self.rng)
        loaders = trainer.train_dataloader if isinstance(trainer.train_dataloader, list) else [trainer.train_dataloader]
        for loader, state in zip((loader for loader in loaders if hasattr(loader, "load_state_dict")), self.loader_states, strict=False):
            loader.load_state_dict(state)
        self.rng, self.loader_states = None, []
