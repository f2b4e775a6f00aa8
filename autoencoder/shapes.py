"""Print each layer's output shape and the conv size formulas: `python -m autoencoder.shapes model=conv model.latent_dim=2`."""

from omegaconf import DictConfig

from autoencoder.models.sizes import describe_configured
from autoencoder.utils.cli import hydra_command


@hydra_command("shapes")
def main(cfg: DictConfig) -> None:
    print("\n".join(describe_configured(cfg)))


if __name__ == "__main__":
    main()
