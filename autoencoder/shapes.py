"""Print each layer's output shape and the conv size formulas: `python -m autoencoder.shapes model=conv model.latent_dim=2`."""

import hydra
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.models.sizes import describe_configured
from autoencoder.utils.cli import command, run_cli


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="shapes")
def main(cfg: DictConfig) -> None:
    with command():
        print("\n".join(describe_configured(cfg)))


if __name__ == "__main__":
    run_cli(main)
