"""Sample a checkpoint's latent space: `python -m autoencoder.sample ckpt_path=outputs/<run>/checkpoints/last.ckpt`."""

from omegaconf import DictConfig

from autoencoder.evaluation.sampling import sample
from autoencoder.utils.cli import hydra_command


@hydra_command("sample", added=("data",))
def main(cfg: DictConfig) -> None:
    sample(cfg, cfg.get("data"))


if __name__ == "__main__":
    main()
