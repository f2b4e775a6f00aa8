"""What the train command runs for each job: a training run and, with evaluate=true, the
evaluation of its best checkpoint (`train_and_evaluate`); in a sweep, a job whose failure is
recorded so that the other jobs go on (`train_job`).
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from autoencoder.evaluation.evaluate import evaluate, instantiate_measures
from autoencoder.runs.record import RunRecord
from autoencoder.training.launch import launch
from autoencoder.training.run import record_failure, train
from autoencoder.utils.errors import user_message

log = logging.getLogger(__name__)


def train_and_evaluate(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict:
    """A training run (autoencoder.training.run.train) that, with evaluate=true, evaluates its best
    checkpoint once it has completed; returns what its metrics.json holds. The measures are built
    first: a bad entry under evaluation.measures stops the run before it trains, not after."""
    if cfg.evaluate:
        instantiate_measures(cfg.evaluation.measures)
    return train(cfg, callbacks, evaluate=evaluate_run)


def evaluate_run(cfg: DictConfig, record: RunRecord) -> dict:
    """Evaluate a completed run's best checkpoint (its last where none was best) into
    `<run>/evaluation/` with the settings of `cfg.evaluation`, and add the headline figures to
    its metrics.json, which is written without them first: an evaluation that fails or is
    stopped leaves the run's own figures. Returns the headline figures."""
    out = Path(cfg.output_dir)
    checkpoint = record.best_checkpoint or record.last_checkpoint
    settings = OmegaConf.merge({"ckpt_path": checkpoint, "output_dir": str(out / "evaluation"), "progress": cfg.progress}, cfg.evaluation)
    figures = evaluate(settings).headline
    replace(record, evaluation=figures).write(out)
    log.info("evaluation: %s | %s", ", ".join(f"{key} {value:.4g}" for key, value in figures.items()), out / "evaluation")
    return figures


def parallel_workers(launcher: DictConfig) -> int:
    """How many jobs a launcher runs at once: its `n_jobs` (joblib's n_jobs < 0 means all cores
    but |n_jobs| - 1), else one."""
    n_jobs = launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


def thread_share(launcher: DictConfig) -> int | None:
    """CPU threads per job when a launcher runs several at once, so that the jobs together use
    each core once; None (torch's default) for one at a time."""
    workers = parallel_workers(launcher)
    return None if workers == 1 else max(1, (os.cpu_count() or 1) // workers)


def train_job(cfg: DictConfig, launcher: DictConfig | None = None) -> float | None:
    """One job of the train command; returns the monitored metric (best val loss) for Hydra's
    sweepers. `launcher` is the sweep's launcher config, None for a single run. A single run lets
    its error through (the command prints it as one line); a job of a sweep records its error in
    metrics.json and returns NaN (a failed Optuna trial), so that the other jobs go on. How the job
    was launched (Hydra's config group choices, command line and sweep) goes into the config as `launch`."""
    with open_dict(cfg):
        cfg.launch = launch(HydraConfig.get())
    if launcher is None:
        return train_and_evaluate(cfg)["best_val_loss"]
    if cfg.threads is None:
        cfg.threads = thread_share(launcher)
    try:
        return train_and_evaluate(cfg)["best_val_loss"]
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the other jobs go on
        error = user_message(exc) or f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        log.error("job failed: %s", error, exc_info=user_message(exc) is None)
        record_failure(Path(cfg.output_dir), error)
        return float("nan")
