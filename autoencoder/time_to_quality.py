"""`make bench-quality`: wall time and epochs until each training recipe reaches a fixed
validation loss (`python -m autoencoder.time_to_quality seeds=[42]`); the tooling lives in
`benchmarks.time_to_quality`."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder.utils.cli import hydra_command
from benchmarks.time_to_quality import time_to_quality


@hydra_command("time_to_quality")
def main(cfg: DictConfig) -> None:
    time_to_quality(cfg, " ".join(["python -m autoencoder.time_to_quality", *HydraConfig.get().overrides.task]))


if __name__ == "__main__":
    main()
