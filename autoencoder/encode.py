"""Write the latent codes of a split: `python -m autoencoder.encode ckpt_path=outputs/<run>/checkpoints/last.ckpt split=test`."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder.evaluation.encode import encode
from autoencoder.utils.cli import hydra_command, overridden


@hydra_command("encode")
def main(cfg: DictConfig) -> None:
    encode(cfg, overridden(cfg, "data", HydraConfig.get()))


if __name__ == "__main__":
    main()
