"""Evaluate a checkpoint on the test set: `python -m autoencoder.evaluate ckpt_path=outputs/<run>/checkpoints/last.ckpt`."""

from omegaconf import DictConfig

from autoencoder.evaluation.evaluate import evaluate
from autoencoder.utils.cli import hydra_command


@hydra_command("evaluate", added=("data",))
def main(cfg: DictConfig) -> None:
    evaluate(cfg, cfg.get("data"))


if __name__ == "__main__":
    main()
