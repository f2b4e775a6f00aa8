"""`make bench`: the framework's training speed beside a lecture-style loop and the compute bound
(`python -m autoencoder.bench repeats=5`); the tooling lives in the `benchmarks` package."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder import CONFIG_DIR
from autoencoder.utils.cli import command, overridden, run_cli
from benchmarks.suite import bench


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="bench")
def main(cfg: DictConfig) -> None:
    with command():
        hydra_cfg = HydraConfig.get()
        bench(cfg, " ".join(["python -m autoencoder.bench", *hydra_cfg.overrides.task]), overridden(cfg, "data", hydra_cfg))


if __name__ == "__main__":
    run_cli(main)
