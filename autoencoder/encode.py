"""Keep the encoder: write the latent codes of a data split, with their labels, as .npy files.

    python -m autoencoder.encode ckpt_path=outputs/<run>/checkpoints/last.ckpt split=test

The lecture's last step: after training, the decoder can go and the encoder becomes a feature
extractor. `<split>_codes.npy` (N x latent_dim, float32) and `<split>_labels.npy` (N, int64) go to
the command's own output folder.
"""

import logging
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.checkpoint import datamodule_for, in_batches, load_trained
from autoencoder.errors import exit_on_user_error, run_cli

log = logging.getLogger(__name__)


def encode(cfg: DictConfig) -> tuple[Path, Path]:
    """Encode `cfg.split` with the checkpoint's encoder; returns the paths of codes and labels."""
    run_cfg, module = load_trained(cfg.ckpt_path)
    images, labels = datamodule_for(run_cfg, cfg.data_dir).split(cfg.split)
    codes = in_batches(module.net.encoder, images, cfg.batch_size)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    codes_path, labels_path = out / f"{cfg.split}_codes.npy", out / f"{cfg.split}_labels.npy"
    np.save(codes_path, codes.numpy().astype(np.float32))
    np.save(labels_path, labels.numpy())
    log.info("%d %s codes of size %d written to %s and %s", len(codes), cfg.split, codes.shape[1], codes_path, labels_path)
    return codes_path, labels_path


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="encode")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        encode(cfg)


if __name__ == "__main__":
    run_cli(main)
