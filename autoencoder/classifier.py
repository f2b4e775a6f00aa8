"""Train a dataset's feature classifier, which the generation measure's FID is taken on, or report the cached one:
`python -m autoencoder.classifier data=mnist`."""

from omegaconf import DictConfig

from autoencoder.evaluation.classifier import classifier
from autoencoder.utils.cli import hydra_command


@hydra_command("classifier")
def main(cfg: DictConfig) -> None:
    manifest = classifier(cfg)
    print(f"{manifest['dataset']}: test accuracy {manifest['test_accuracy']:.4f}, weights {manifest['weights']}")


if __name__ == "__main__":
    main()
