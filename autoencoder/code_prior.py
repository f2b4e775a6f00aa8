"""Learn a prior over a VQ-VAE's code grids: `python -m autoencoder.code_prior ckpt_path=outputs/<run>/checkpoints/last.ckpt`."""

from omegaconf import DictConfig

from autoencoder.utils.cli import hydra_command
from autoencoder.workflows.code_prior import train_code_prior


@hydra_command("code_prior", added=("data",))
def main(cfg: DictConfig) -> None:
    train_code_prior(cfg, cfg.get("data"))


if __name__ == "__main__":
    main()
