"""Keep the encoder: the latent codes of a data split, with their labels, as .npy files.

After training, the decoder can go and the encoder becomes a feature extractor.
`<split>_codes.npy` (N x latent_dim, float32) and `<split>_labels.npy` (N, int64) go to the
command's own output folder.
"""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from autoencoder.config.validation import RUN, RUN_DATA, integer, one_of, text, validate
from autoencoder.data.images import SPLITS
from autoencoder.evaluation.batched import in_batches
from autoencoder.runs.checkpoints import datamodule_for, load_trained

log = logging.getLogger(__name__)

# conf/encode.yaml's keys, data.* for the run's data.
RULES = {**RUN, **RUN_DATA, "ckpt_path": text(), "split": one_of(*SPLITS), "batch_size": integer(1)}


def encode(cfg: DictConfig, data: Mapping | None = None) -> tuple[Path, Path]:
    """Encode `cfg.split` with the checkpoint's encoder; returns the paths of codes and labels.
    `data` is the command line's data (keys of the run's, or another dataset:
    autoencoder.runs.checkpoints.datamodule_for)."""
    validate(cfg, RULES)
    run_cfg, module = load_trained(cfg.ckpt_path)
    images, labels = datamodule_for(run_cfg, data).split(cfg.split)
    codes = in_batches(module.encode, images, cfg.batch_size)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    codes_path, labels_path = out / f"{cfg.split}_codes.npy", out / f"{cfg.split}_labels.npy"
    np.save(codes_path, codes.numpy().astype(np.float32))
    np.save(labels_path, labels.numpy())
    log.info("%d %s codes of size %d written to %s and %s", len(codes), cfg.split, codes.shape[1], codes_path, labels_path)
    return codes_path, labels_path
