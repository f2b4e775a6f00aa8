"""Write the latent codes of a split: `python -m autoencoder.encode ckpt_path=outputs/<run>/checkpoints/last.ckpt split=test`."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.evaluation.encode import encode
from autoencoder.utils.cli import command, overridden, run_cli


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="encode")
def main(cfg: DictConfig) -> None:
    with command():
        encode(cfg, overridden(cfg, "data", HydraConfig.get()))


if __name__ == "__main__":
    run_cli(main)
