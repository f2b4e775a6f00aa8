"""Train an autoencoder: `python -m autoencoder.train model.latent_dim=2 noise=0.3`.

`train(cfg)` does the work (tests call it with a composed config); the `@hydra.main` function hands
it the config and, in a sweep, keeps one failed job from ending the others. A run folder gets the
resolved config, TensorBoard events, checkpoints (best by val loss, and last), image grids and
`metrics.json` (with DDP, only the first process writes them).
"""

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from autoencoder import CONFIG_DIR
from autoencoder.callbacks import Diverged, EpochSummary, StopOnDivergence, ValidationImages
from autoencoder.checkpoint import ConfigInCheckpoint, check_resume_checkpoint, resume_config
from autoencoder.errors import UserError, exit_on_user_error, run_cli, user_message
from autoencoder.files import write_atomic
from autoencoder.precision import check_precision

log = logging.getLogger(__name__)


def _hparams(cfg: DictConfig) -> dict:
    """The run's settings for TensorBoard's HParams tab (the module node only repeats them)."""
    params = OmegaConf.to_container(cfg, resolve=True)
    for key in ("module", "output_dir", "ckpt_path", "resume"):
        params.pop(key, None)
    return params


# Lightning asserts on these instead of explaining; null is allowed where Lightning allows it.
INTEGER_TRAINER_ARGS = {"max_epochs": True, "min_epochs": True, "max_steps": False, "min_steps": True, "check_val_every_n_epoch": True,
                        "log_every_n_steps": True, "accumulate_grad_batches": False, "num_sanity_val_steps": True}  # fmt: skip


def check_trainer(trainer: DictConfig) -> None:
    """One-line errors for trainer arguments of the wrong type (e.g. `trainer.max_epochs=abc`)."""
    for key, nullable in INTEGER_TRAINER_ARGS.items():
        value = trainer.get(key)
        if not (value is None and nullable) and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError(f"trainer.{key} must be an integer{' or null' if nullable else ''}, got {value!r}")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = trainer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise UserError(f"trainer.{key} must be a number of batches (integer) or a fraction (0.0 to 1.0), got {value!r}")


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict:
    """Fit, test the best checkpoint, write metrics.json; returns the metrics. `callbacks` are
    added to the run's own (the benchmark times steps with one). With `resume=<run folder>` the
    run goes on in that folder, with its config, from its last checkpoint."""
    if cfg.resume:
        cfg = resume_config(cfg.resume, cfg)
    out = Path(cfg.output_dir)
    if rank_zero_only.rank == 0:
        write_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    check_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    check_trainer(cfg.trainer)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module)
    ckpt_path = check_resume_checkpoint(cfg.ckpt_path, module) if cfg.ckpt_path else None

    summary = EpochSummary()
    checkpoint = instantiate(cfg.checkpoint)
    callbacks = [summary, StopOnDivergence(), checkpoint, ValidationImages(out), ConfigInCheckpoint(cfg), *callbacks]
    early_stopping = instantiate(cfg.early_stopping) if cfg.early_stopping else None
    if early_stopping is not None:
        callbacks.append(early_stopping)
    logger = instantiate(cfg.logger) if cfg.logger else False
    if logger:
        callbacks.append(LearningRateMonitor())
    progress_bar = bool(cfg.trainer.enable_progress_bar) and sys.stdout.isatty()
    if progress_bar:
        callbacks.append(RichProgressBar())
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, enable_progress_bar=progress_bar)

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except Diverged as exc:
        record_failure(out, str(exc))
        raise
    # Read these before testing: restoring the best checkpoint also restores the callbacks' state.
    metrics = {
        "best_val_loss": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
        "test_loss": None,
        "epochs": trainer.current_epoch,
        "stopped_early": bool(early_stopping is not None and early_stopping.stopped_epoch > 0),
        "train_samples_per_s": round(summary.samples_per_second, 1),
        "train_seconds": round(summary.train_seconds, 2),
        "best_checkpoint": checkpoint.best_model_path or None,
        "last_checkpoint": checkpoint.last_model_path or None,
        "precision": str(trainer.precision),
        "status": "completed",
    }
    metrics["test_loss"] = trainer.test(module, datamodule=datamodule, ckpt_path=metrics["best_checkpoint"], verbose=False)[0]["test/loss"]
    if not trainer.is_global_zero:
        return metrics
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(_hparams(cfg), {"hparams/best_val_loss": metrics["best_val_loss"], "hparams/test_loss": metrics["test_loss"]})
    elif logger:
        logger.log_hyperparams(_hparams(cfg))
    log.info(
        "best val loss %.5f | test loss %.5f | %d epochs%s | %.0f samples/s | run folder %s",
        metrics["best_val_loss"] if metrics["best_val_loss"] is not None else float("nan"),
        metrics["test_loss"],
        metrics["epochs"],
        " (stopped early)" if metrics["stopped_early"] else "",
        metrics["train_samples_per_s"],
        out,
    )
    return metrics


def thread_share(launcher: DictConfig) -> int | None:
    """CPU threads per job when a parallel launcher runs `n_jobs` at once (joblib's n_jobs < 0
    means all cores but |n_jobs| - 1), so that the jobs together use each core once."""
    n_jobs = launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs in (0, 1):
        return None
    cores = os.cpu_count() or 1
    workers = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // workers)


def record_failure(out: Path, error: str) -> None:
    """Mark the run failed in its metrics.json, with its one-line error (for the sweep's summary).
    Only in a folder train() started (it holds config.yaml), and never over a completed run's
    metrics.json (a failed resume of it)."""
    path = out / "metrics.json"
    try:
        completed = json.loads(path.read_text()).get("status", "completed") == "completed"
    except (OSError, ValueError, AttributeError):
        completed = False
    if rank_zero_only.rank == 0 and (out / "config.yaml").is_file() and not completed:
        write_atomic(path, json.dumps({"status": "failed", "error": error}, indent=2) + "\n")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """The monitored metric (best val loss) for Hydra's sweepers. A single run stops at a bad input
    with one error line; a job of a sweep records its error in metrics.json and returns
    NaN (a failed Optuna trial), so that the other jobs go on."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        with exit_on_user_error():
            return train(cfg)["best_val_loss"]
    if cfg.threads is None:
        cfg.threads = thread_share(hydra_cfg.launcher)
    try:
        return train(cfg)["best_val_loss"]
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the other jobs go on
        error = user_message(exc) or f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        log.error("job failed: %s", error, exc_info=user_message(exc) is None)
        record_failure(Path(cfg.output_dir), error)
        return float("nan")


if __name__ == "__main__":
    run_cli(main)
