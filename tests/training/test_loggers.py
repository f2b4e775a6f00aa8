"""The optional loggers (`logger=wandb`, `logger=mlflow`): a tiny run, then what the logger wrote,
read back from the run folder; and the one line a user gets when the logger's package is missing.

The runs need the `wandb` / `mlflow` extras and are skipped without them; the missing-package test
always runs (it hides the package from Lightning)."""

import json
import math
import struct
import sys
from pathlib import Path

import pytest
from lightning.pytorch.loggers import mlflow as lightning_mlflow
from lightning.pytorch.loggers import wandb as lightning_wandb

from autoencoder.training.run import train
from autoencoder.utils.errors import UserError, user_message


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> Path:
    """Keep everything wandb writes besides the run folder (its cache, config, data and artifact
    folders) under tmp_path, with no API key; returns that folder."""
    home = tmp_path / "wandb_home"
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # Lightning's offline WandbLogger sets WANDB_MODE for the whole process: set then delete it
    # here so that monkeypatch puts back what was there before (offline must come from the config).
    monkeypatch.setenv("WANDB_MODE", "")
    monkeypatch.delenv("WANDB_MODE")
    yield home
    wandb = sys.modules.get("wandb")
    if wandb is not None:  # finish a failed test's run (else the next WandbLogger reuses it), stop wandb's service
        wandb.teardown()


def wandb_records(path: Path):
    """The records (wandb_internal_pb2.Record) of a run's .wandb file: a LevelDB-style log of
    32 KiB blocks after a 7-byte header (':W&B', magic, version), each record split into chunks
    with a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    block, pos, chunks = 32768, 7, []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def test_wandb_logger_writes_an_offline_run_into_the_run_folder(make_cfg, wandb_offline, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)  # wandb would make ./wandb if it ignored save_dir
    cfg = make_cfg("logger=wandb")
    metrics = train(cfg)
    wandb.finish()  # close the run (train() leaves it open) ...
    wandb.teardown()  # ... and wait for wandb's service to write it out (finish() alone may return first)

    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    assert not list((tmp_path / "run" / "wandb").glob("run-*"))  # no online run
    assert not (tmp_path / "wandb").exists()
    records = list(wandb_records(next(runs[0].glob("run-*.wandb"))))
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds[0] == "header" and "exit" in kinds
    of_kind = lambda kind: [r for r in records if r.WhichOneof("record_type") == kind]  # noqa: E731
    assert of_kind("run")[0].run.project == "autoencoder"

    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item} for r in of_kind("history")]
    val_losses = [row["val/loss"] for row in history if "val/loss" in row]
    assert len(val_losses) == 1 and math.isfinite(val_losses[0])  # one epoch
    assert val_losses[0] == pytest.approx(metrics["best_val_loss"])
    final = next(row for row in history if "test_loss" in row)
    assert final["test_loss"] == pytest.approx(metrics["test_loss"])
    assert final["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    assert any("train/loss_epoch" in row for row in history)
    config = {item.key: json.loads(item.value_json) for r in of_kind("config") for item in r.config.update}
    assert config["model"]["latent_dim"] == cfg.model.latent_dim
    assert config["noise"] == cfg.noise
    assert (wandb_offline / "wandb_cache_dir").is_dir()  # wandb's own folders went where the fixture said


@pytest.mark.slow  # MLflow creates its SQLite tables (~7 s) before the run
def test_mlflow_logger_writes_a_local_store_into_the_run_folder(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config_home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow would make ./mlruns if it ignored the tracking URI
    cfg = make_cfg("logger=mlflow")
    metrics = train(cfg)

    assert cfg.logger.tracking_uri == f"sqlite:///{tmp_path}/run/mlflow.db"
    assert (tmp_path / "run" / "mlflow.db").is_file()
    assert not (tmp_path / "mlruns").exists()
    client = MlflowClient(tracking_uri=cfg.logger.tracking_uri)
    experiment = client.get_experiment_by_name("autoencoder")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert len(history) == 1 and history[0].value == pytest.approx(metrics["best_val_loss"])
    assert run.data.metrics["test_loss"] == pytest.approx(metrics["test_loss"])
    assert run.data.metrics["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    assert "train/loss_epoch" in run.data.metrics
    # Hyperparameters are flattened with "/": the run's config, and the module's own (net/...).
    assert run.data.params["model/latent_dim"] == str(cfg.model.latent_dim)
    assert run.data.params["net/latent_dim"] == str(cfg.model.latent_dim)
    assert run.data.params["noise"] == str(cfg.noise)


class _Missing:
    """Stands for Lightning's RequirementCache of a package that is not installed."""

    def __init__(self, package: str):
        self.package = package

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"No module named '{self.package}'"


@pytest.mark.parametrize(("extra", "module", "flag"), [("wandb", lightning_wandb, "_WANDB_AVAILABLE"), ("mlflow", lightning_mlflow, "_MLFLOW_AVAILABLE")])
def test_a_logger_without_its_package_is_one_line_naming_the_extra(make_cfg, monkeypatch, extra, module, flag):
    monkeypatch.setattr(module, flag, _Missing(extra))
    with pytest.raises(UserError) as info:
        train(make_cfg(f"logger={extra}"))
    message = user_message(info.value)
    assert message == f"logger={extra} needs a package that is not installed (No module named '{extra}'); install it with: pip install -e '.[{extra}]'"
    assert "\n" not in message
