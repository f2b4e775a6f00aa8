"""Sample a checkpoint's latent space: `python -m autoencoder.sample ckpt_path=outputs/<run>/checkpoints/last.ckpt`."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.evaluation.sampling import sample
from autoencoder.utils.cli import command, overridden, run_cli


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sample")
def main(cfg: DictConfig) -> None:
    with command():
        sample(cfg, overridden(cfg, "data", HydraConfig.get()))


if __name__ == "__main__":
    run_cli(main)
