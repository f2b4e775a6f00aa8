"""Train an autoencoder: `python -m autoencoder.train model.latent_dim=2 noise=0.3` (`-m` sweeps)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.training.run import train_job
from autoencoder.utils.cli import command, run_cli


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    with command():
        return train_job(cfg, hydra_cfg.launcher if hydra_cfg.mode == RunMode.MULTIRUN else None)


if __name__ == "__main__":
    run_cli(main)
