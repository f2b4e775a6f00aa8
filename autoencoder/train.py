"""Train an autoencoder: `python -m autoencoder.train model.latent_dim=2 noise=0.3` (`-m` sweeps)."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from autoencoder.data.dataset import check_files
from autoencoder.utils.cli import hydra_command


@hydra_command("config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.RUN and not cfg.resume:  # a sweep's job records its own failure; a resumed run has its own data
        check_files(cfg.data)  # before torch and Lightning load (seconds): a missing dataset is reported at once
    from autoencoder.workflows.jobs import train_job

    return train_job(cfg, hydra_cfg.launcher if hydra_cfg.mode == RunMode.MULTIRUN else None)


if __name__ == "__main__":
    main()
