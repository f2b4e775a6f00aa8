"""Train an autoencoder: `python -m autoencoder.train model.latent_dim=2 noise=0.3` (`-m` sweeps)."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from autoencoder.training.run import train_job
from autoencoder.utils.cli import hydra_command


@hydra_command("config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    return train_job(cfg, hydra_cfg.launcher if hydra_cfg.mode == RunMode.MULTIRUN else None)


if __name__ == "__main__":
    main()
