"""`make bench`: the framework's training speed beside a lecture-style loop and the compute bound
(`python -m autoencoder.bench repeats=5`); the tooling lives in the `benchmarks` package."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoder.utils.cli import hydra_command, overridden
from benchmarks.suite import bench


@hydra_command("bench")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    bench(cfg, " ".join(["python -m autoencoder.bench", *hydra_cfg.overrides.task]), overridden(cfg, "data", hydra_cfg))


if __name__ == "__main__":
    main()
