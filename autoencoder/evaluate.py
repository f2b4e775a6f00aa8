"""Evaluate a checkpoint on the test set: `python -m autoencoder.evaluate ckpt_path=outputs/<run>/checkpoints/last.ckpt`."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder.evaluation.evaluate import evaluate
from autoencoder.utils.cli import hydra_command, overridden


@hydra_command("evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg, overridden(cfg, "data", HydraConfig.get()))


if __name__ == "__main__":
    main()
