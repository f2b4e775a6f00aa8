"""Write the latent codes of a split: `python -m autoencoder.encode ckpt_path=outputs/<run>/checkpoints/last.ckpt split=test`."""

from omegaconf import DictConfig

from autoencoder.evaluation.encode import encode
from autoencoder.utils.cli import hydra_command


@hydra_command("encode", added=("data",))
def main(cfg: DictConfig) -> None:
    encode(cfg, cfg.get("data"))


if __name__ == "__main__":
    main()
