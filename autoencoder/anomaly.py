"""One-class anomaly detection, the whole table (every class x three seeds): `python -m autoencoder.anomaly`;
a part of it: `python -m autoencoder.anomaly classes=[3] seeds=[0] noise=0.3`. It returns the mean
validation AUROC of the chosen score, so a sweep over its settings (`-m`) is chosen on validation."""

from omegaconf import DictConfig

from autoencoder.utils.cli import hydra_command
from autoencoder.workflows.anomaly import anomaly


@hydra_command("anomaly")
def main(cfg: DictConfig) -> float:
    summary = anomaly(cfg)
    return summary["val"][summary["chosen_score"]]["mean_auroc"]


if __name__ == "__main__":
    main()
