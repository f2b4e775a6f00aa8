"""The generative study table: `python -m autoencoder.study data=fashion_mnist trainer.max_epochs=10`;
some of its models: `only=[vae,vqvae]`; an interrupted one finished: `hydra.run.dir=<its folder>`."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder.utils.cli import hydra_command
from autoencoder.workflows.study import study


@hydra_command("study")
def main(cfg: DictConfig) -> None:
    study(cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
