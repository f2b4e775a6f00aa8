"""Sample a checkpoint's latent space: `python -m autoencoder.sample ckpt_path=outputs/<run>/checkpoints/last.ckpt`."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder.evaluation.sampling import sample
from autoencoder.utils.cli import hydra_command, overridden


@hydra_command("sample")
def main(cfg: DictConfig) -> None:
    sample(cfg, overridden(cfg, "data", HydraConfig.get()))


if __name__ == "__main__":
    main()
