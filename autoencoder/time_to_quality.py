"""`make bench-quality`: wall time and epochs until each training recipe reaches a fixed
validation loss (`python -m autoencoder.time_to_quality seeds=[42]`); the tooling lives in
`benchmarks.time_to_quality`."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.utils.cli import command, run_cli
from benchmarks.time_to_quality import time_to_quality


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="time_to_quality")
def main(cfg: DictConfig) -> None:
    with command():
        time_to_quality(cfg, " ".join(["python -m autoencoder.time_to_quality", *HydraConfig.get().overrides.task]))


if __name__ == "__main__":
    run_cli(main)
