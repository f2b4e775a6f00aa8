"""Training runs: `train(cfg)` fits, tests the best checkpoint and writes metrics.json.

A run folder gets the resolved config, logger output, checkpoints (best by val loss, and last),
image grids and `metrics.json` (with DDP, only the first process writes them). With evaluate=true
the caller's `evaluate` adds the evaluation (autoencoder.workflows.jobs passes it).
"""

import logging
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import lightning as L
import optuna
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, ListConfig, OmegaConf

from autoencoder.config.validation import validate
from autoencoder.data.images import data_module
from autoencoder.runs.checkpoints import INTERRUPT_CHECKPOINT, check_resume_checkpoint, latest_checkpoint, resume_config
from autoencoder.runs.record import FINAL_STATUSES, RunRecord, Status, run_status
from autoencoder.training.callbacks import Diverged, EpochSummary
from autoencoder.training.checkpoints import AtomicCheckpointIO, ConfigInCheckpoint, ResumeExactly
from autoencoder.training.hparams import hparam_columns, metric_columns
from autoencoder.training.instantiate import instantiate_callbacks, instantiate_logger
from autoencoder.training.interrupts import SignalListener, StopOnSignal, requeued_by_slurm
from autoencoder.training.tensorboard import HParamsTensorBoardLogger
from autoencoder.utils.errors import Interrupted, UserError, signal_name
from autoencoder.utils.files import remove_stale_temporaries, write_atomic

log = logging.getLogger(__name__)

# What evaluates a completed run (its config, its record) into the figures its record keeps.
Evaluator = Callable[[DictConfig, RunRecord], dict[str, float]]


def _hparams(cfg: DictConfig) -> dict:
    """The run's settings for the hyperparameters of a logger other than TensorBoard, whose HParams
    tab has columns of its own (autoencoder.training.hparams); the module node only repeats them."""
    params = OmegaConf.to_container(cfg, resolve=True)
    for key in ("module", "callbacks", "output_dir", "ckpt_path", "resume", "resume_unfinished", "interrupts", "evaluation"):
        params.pop(key, None)
    return params


def _plugins(configured) -> list:
    """The trainer's plugins; checkpoints are written atomically unless one of them writes them."""
    given = instantiate(configured) if configured is not None else []
    given = list(given) if isinstance(given, (list, ListConfig)) else [given]
    return given if any(isinstance(p, CheckpointIO) for p in given) else [*given, AtomicCheckpointIO()]


def build_trainer(cfg: DictConfig, logger: Logger | None, callbacks: list[L.Callback]) -> L.Trainer:
    """The Trainer of `cfg.trainer` with these callbacks. The progress bar shows on a terminal only,
    the model summary not with trainer.enable_model_summary=false, the learning-rate monitor needs
    a logger, and a run whose config lists no ModelCheckpoint saves
    none (Lightning would add its own). Checkpoints are written atomically (AtomicCheckpointIO).
    Lightning's refusals (no GPU, ...) become one line."""
    enabled = {flag: cfg.trainer.get(f"enable_{flag}") is not False for flag in ("progress_bar", "checkpointing", "model_summary")}  # null: Lightning's on
    progress_bar, checkpointing = enabled["progress_bar"] and sys.stdout.isatty(), enabled["checkpointing"]
    dropped = (ProgressBar,) * (not progress_bar) + (LearningRateMonitor,) * (logger is None) + (ModelCheckpoint,) * (not checkpointing)
    dropped += (ModelSummary,) * (not enabled["model_summary"])
    callbacks = [c for c in callbacks if not isinstance(c, dropped)]
    checkpointing = checkpointing and any(isinstance(c, ModelCheckpoint) for c in callbacks)
    options = {"callbacks": callbacks, "logger": logger or False, "enable_progress_bar": progress_bar, "enable_checkpointing": checkpointing}
    options["plugins"] = _plugins(cfg.trainer.get("plugins"))
    try:
        return instantiate(cfg.trainer, **options)
    except Exception as exc:
        cause = next((e for e in (exc, exc.__cause__) if isinstance(e, MisconfigurationException)), None)
        if cause is not None:
            text = " ".join(str(cause).split())
            hardware = any(word in text.lower() for word in ("gpu", "cuda", "accelerator", "device"))
            advice = "use trainer=cpu, or trainer=auto to take a GPU only when there is one" if hardware else "see the trainer.* settings in conf/trainer/"
            raise UserError(
                f"the Trainer refused trainer.accelerator={cfg.trainer.accelerator} trainer.devices={cfg.trainer.devices}: {text}; {advice}"
            ) from exc
        raise


def unfinished_run(cfg: DictConfig) -> str | None:
    """The run folder to go on with when this run's own folder already holds a stopped run and
    `resume_unfinished` (a sweep run again in its old folder) or a SLURM requeue asks for it."""
    out = Path(cfg.output_dir)
    wanted = cfg.resume_unfinished is True or requeued_by_slurm()
    return str(out) if wanted and run_status(out) not in FINAL_STATUSES and latest_checkpoint(out) and (out / "config.yaml").is_file() else None


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = (), evaluate: Evaluator | None = None) -> dict:
    """Fit, test the best checkpoint, write metrics.json; returns what it holds. `callbacks` are
    added to the configured ones (the benchmark times steps with one). With `resume=<run folder>`
    the run goes on in that folder, with its config, from its latest checkpoint; with
    `resume_unfinished` a run whose folder holds a completed run returns its metrics untrained.
    A signal in `interrupts.signals` stops the run with Interrupted (autoencoder.training.interrupts).
    With `cfg.evaluate` a completed run is then evaluated by `evaluate`, which returns the headline
    figures its record keeps (and the HParams tab shows)."""
    if cfg.evaluate and evaluate is None:
        raise ValueError("evaluate=true needs train(..., evaluate=...): autoencoder.workflows.jobs.train_and_evaluate passes the evaluation")
    if not cfg.resume and cfg.resume_unfinished is True and run_status(cfg.output_dir) in FINAL_STATUSES:
        log.info("%s already holds a finished run: kept, not trained again", cfg.output_dir)
        return RunRecord.read(cfg.output_dir).to_json()
    if resume := cfg.resume or unfinished_run(cfg):
        cfg = resume_config(resume, cfg)
        if rank_zero_only.rank == 0:  # what writes killed with their process left behind
            for folder in (Path(cfg.output_dir), Path(cfg.output_dir) / "checkpoints"):
                remove_stale_temporaries(folder)
    out = Path(cfg.output_dir)
    try:
        validate(cfg)  # and fill in the settings its nodes leave to their classes' defaults
    finally:  # config.yaml says every setting the run ran with; written first, so that a sweep's job refused here or below is recorded as failed
        if rank_zero_only.rank == 0:
            write_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = data_module(cfg.data)
    if rank_zero_only.rank == 0:  # missing data fails here, in seconds, before Lightning starts (fit checks again)
        datamodule.prepare_data()
    module = instantiate(cfg.module)
    ckpt_path = check_resume_checkpoint(cfg.ckpt_path, module) if cfg.ckpt_path else None
    logger = instantiate_logger(cfg.logger)
    listener = SignalListener(cfg.interrupts.signals)
    stop = StopOnSignal(listener, out / "checkpoints" / INTERRUPT_CHECKPOINT, cfg.interrupts.requeue_signals)
    log.info("run folder %s%s", out, f" (resuming from {ckpt_path})" if resume else "")
    try:
        with listener, warnings.catch_warnings():
            if resume:  # its checkpoints are what it goes on from
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            trainer = build_trainer(cfg, logger, [*instantiate_callbacks(cfg.callbacks), ConfigInCheckpoint(cfg), ResumeExactly(), stop, *callbacks])
            if cfg.evaluate and (trainer.checkpoint_callback is None or trainer.fast_dev_run):
                raise UserError(
                    "evaluate=true evaluates the run's best checkpoint, and this run saves none: keep callbacks.model_checkpoint and "
                    "trainer.enable_checkpointing=true, without trainer.fast_dev_run"
                )
            record = fit_and_test(cfg, trainer, module, datamodule, ckpt_path)
    finally:
        if isinstance(logger, WandbLogger):  # its run stays open otherwise: the next run of a sweep would log into it
            import wandb

            wandb.finish()
    # Once the signal listener is gone (Ctrl-C stops an evaluation as it stops the evaluate command),
    # and by the first process alone, as it alone writes metrics.json.
    try:
        if cfg.evaluate and record.status is Status.COMPLETED and trainer.is_global_zero:
            record.evaluation = evaluate(cfg, record)
    finally:  # with the evaluation's figures, or the run's own where the evaluation failed
        if isinstance(logger, HParamsTensorBoardLogger) and trainer.is_global_zero:
            logger.log_hparams_tab(hparam_columns(cfg, record.status), metric_columns(record), record.status, trainer.global_step)
    return record.to_json()


def _fit_record(trainer: L.Trainer) -> RunRecord:
    """The record of a fit that has ended (the test loss is added after testing)."""
    checkpoint, early_stopping = trainer.checkpoint_callback, trainer.early_stopping_callback
    summary = next((c for c in trainer.callbacks if isinstance(c, EpochSummary)), None)
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    return RunRecord(
        best_val_loss=float(checkpoint.best_model_score) if best and checkpoint.best_model_score is not None else None,
        epochs=trainer.current_epoch,
        stopped_early=bool(early_stopping is not None and early_stopping.stopped_epoch > 0),
        train_samples_per_s=round(summary.samples_per_second, 1) if summary and summary.samples_per_second else None,
        train_seconds=round(summary.train_seconds, 2) if summary else None,
        best_checkpoint=best,
        last_checkpoint=(checkpoint.last_model_path or None) if checkpoint is not None else None,
        precision=str(trainer.precision),
        history=summary.history if summary else [],
    )


def fit_and_test(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, ckpt_path: str | None) -> RunRecord:
    """Fit, test the best checkpoint, write metrics.json and the logger's final figures (TensorBoard's
    come with its HParams tab at the end of train(), after the evaluation). A trial
    that an Optuna search prunes is not tested; its metrics.json says so, with the epoch."""
    out = Path(cfg.output_dir)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except (Interrupted, SIGTERMException) as exc:
        record_interruption(out, trainer, exc)
    except Diverged as exc:
        record_failure(out, str(exc))
        raise
    except optuna.TrialPruned:
        # The pruned epoch was validated (its loss is val_loss) but not checkpointed: ModelCheckpoint runs last.
        epochs, val_loss = trainer.current_epoch + 1, trainer.callback_metrics.get("val/loss")
        pruned = replace(_fit_record(trainer), epochs=epochs, status=Status.PRUNED, pruned_at_epoch=epochs)
        pruned.val_loss = None if val_loss is None else val_loss.item()
        if trainer.is_global_zero:
            pruned.write(out)
            log.info("pruned by the Optuna search after epoch %d (val loss %s) | run folder %s", epochs, pruned.val_loss, out)
        return pruned
    # Read these before testing: restoring the best checkpoint also restores the callbacks' state.
    record = _fit_record(trainer)
    try:
        record.test_loss = trainer.test(module, datamodule=datamodule, ckpt_path=record.best_checkpoint, verbose=False)[0]["test/loss"]
    except (Interrupted, SIGTERMException) as exc:
        record_interruption(out, trainer, exc, record)
    if not trainer.is_global_zero:
        return record
    record.write(out)
    final = {key: value for key, value in (("best_val_loss", record.best_val_loss), ("test_loss", record.test_loss)) if value is not None}
    logger = trainer.logger
    if logger and not isinstance(logger, HParamsTensorBoardLogger):
        logger.log_hyperparams(_hparams(cfg))
        logger.log_metrics(final)
    unit = module.variant.unit
    log.info(
        "best val loss %.5f%s | test loss %.5f%s | %d epochs%s | %.0f samples/s | run folder %s",
        record.best_val_loss if record.best_val_loss is not None else float("nan"),
        unit,
        record.test_loss,
        unit,
        record.epochs,
        " (stopped early)" if record.stopped_early else "",
        record.train_samples_per_s or 0,
        out,
    )
    return record


def record_interruption(out: Path, trainer: L.Trainer, exc: BaseException, record: RunRecord | None = None) -> None:
    """Mark the run interrupted in its metrics.json (the signal, where it stopped, the checkpoint
    and the command that resumes it) and raise Interrupted. Lightning's own SIGTERM handling
    (a signal before this run's handlers were in place) stops without a checkpoint of its own:
    the run then resumes from its last one."""
    if not isinstance(exc, Interrupted):
        testing = trainer.state.fn == "test"
        batch = None if testing else trainer.fit_loop.epoch_loop.batch_progress.current.completed
        exc = Interrupted(signal.SIGTERM, trainer.current_epoch + (0 if testing else 1), batch, trainer.global_step, None)
    exc.resume_command = f"python -m autoencoder.train resume={out}"
    stopped = replace(
        record or _fit_record(trainer),
        status=Status.INTERRUPTED,
        signal=signal_name(exc.signum),
        epoch=exc.epoch,
        batch=exc.batch,
        global_step=exc.step,
        interrupt_checkpoint=exc.checkpoint,
        requeued_slurm_job=exc.requeued,
        resume=exc.resume_command,
    )
    if trainer.is_global_zero:
        stopped.write(out)
    raise exc


def record_failure(out: Path, error: str) -> None:
    """Mark the run failed in its metrics.json, with its one-line error (for the sweep's summary).
    Only in a folder train() started (it holds config.yaml), and never over a completed run's
    metrics.json (a failed resume of it)."""
    if rank_zero_only.rank == 0 and (out / "config.yaml").is_file() and run_status(out) is not Status.COMPLETED:
        RunRecord(status=Status.FAILED, error=error).write(out)
