"""evaluate=true: a training run evaluates its best checkpoint into <run>/evaluation/ and keeps the
headline figures in metrics.json, which a sweep's summary turns into columns."""

import csv
import json
from pathlib import Path

import lightning as L
import optuna
import pytest
from omegaconf import OmegaConf

from autoencoder.utils.cli import load_config
from autoencoder.utils.errors import UserError
from autoencoder.workflows.anomaly import score_run
from autoencoder.workflows.jobs import train_and_evaluate
from tests.conftest import compose_entry
from tests.evaluation.test_measures import Toy
from tests.sweeps.test_sweeps import multirun

# The evaluation at its quickest: the one denoising row the headline keeps, few probe images and
# importance samples.
QUICK = [
    "logger=none",
    "evaluation.denoising.corruptions=[gaussian]",
    "evaluation.denoising.noise=[0.3]",
    "evaluation.denoising.tuning_images=20",
    "evaluation.probe.train_size=100",
    "evaluation.latent.projector_points=20",
    "evaluation.likelihood.samples=4",
    "evaluation.generation.samples=20",
]
HEADLINE = {"test_mse", "denoising_psnr_gaussian_0.3", "linear_probe_accuracy", "knn_accuracy", "fid", "precision", "recall"}
VAE = {"negative_elbo_nats", "nll_nats"}
ANOMALY_SCORES = ("mse", "relative", "latent_knn", "pixel_knn", "combined", "neg_elbo")


def test_train_and_evaluate_share_the_evaluation_settings(tmp_path):
    evaluate_cfg = compose_entry("evaluate", tmp_path, "ckpt_path=x.ckpt")
    train_cfg = load_config("config")
    assert train_cfg.evaluate is False
    assert OmegaConf.masked_copy(evaluate_cfg, list(train_cfg.evaluation)) == train_cfg.evaluation


def test_a_run_with_evaluate_true_keeps_the_headline_figures(make_cfg, tmp_path):
    metrics = train_and_evaluate(make_cfg("evaluate=true", *QUICK))
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text()) == metrics and metrics["status"] == "completed"
    figures, evaluation = metrics["evaluation"], json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert set(figures) == HEADLINE and "likelihood" not in evaluation and "anomaly" not in evaluation
    assert evaluation["checkpoint"] == str(Path(metrics["best_checkpoint"]).resolve())
    assert figures["test_mse"] == evaluation["reconstruction"]["mse"]
    assert figures["denoising_psnr_gaussian_0.3"] == evaluation["denoising"][0]["psnr_autoencoder_db"]
    assert figures["knn_accuracy"] == evaluation["features"]["latent"]["knn_accuracy"] and evaluation["features"]["train_images"] == 100
    assert {"evaluation.md", "latent.png", "denoising_psnr.png"} <= {p.name for p in (run / "evaluation").iterdir()}


def test_a_one_class_vae_run_adds_its_likelihood_and_the_anomaly_command_s_auroc(make_cfg, tmp_path):
    metrics = train_and_evaluate(make_cfg("evaluate=true", *QUICK, "variant=vae", "data.classes=[3]"))
    figures = metrics["evaluation"]
    assert set(figures) == HEADLINE | VAE | {f"anomaly_auroc_{name}" for name in ANOMALY_SCORES}
    evaluation = json.loads((tmp_path / "run" / "evaluation" / "evaluation.json").read_text())
    assert evaluation["likelihood"]["samples"] == 4 and figures["nll_nats"] == evaluation["likelihood"]["nll_nats"]
    assert evaluation["anomaly"]["normal_classes"] == ["3"] and evaluation["anomaly"]["knn_k"] == 5
    # The figures of `python -m autoencoder.anomaly` for this model, on the test set.
    scored = score_run(tmp_path, metrics["best_checkpoint"], 3, ("test",), 5)
    for name in ANOMALY_SCORES:
        assert figures[f"anomaly_auroc_{name}"] == pytest.approx(scored[f"test_auroc_{name}"])
    assert "| normal classes | test AUROC (%), mse score |" in (tmp_path / "run" / "evaluation" / "evaluation.md").read_text()


def test_a_measure_added_under_evaluation_measures_gives_its_headline_figures(make_cfg, tmp_path):
    quickest = ["~evaluation.measures.denoising", "~evaluation.measures.latent", "~evaluation.measures.features", "~evaluation.measures.generation"]
    metrics = train_and_evaluate(make_cfg("evaluate=true", *QUICK, *quickest, f"+evaluation.measures.toy={{_target_:{Toy.__module__}.Toy,scale:1}}"))
    evaluation = json.loads((tmp_path / "run" / "evaluation" / "evaluation.json").read_text())
    assert metrics["evaluation"] == {"test_mse": evaluation["reconstruction"]["mse"], "toy_brightness": evaluation["toy"]["brightness"]}


class PruneAtOnce(L.Callback):
    """What an Optuna search's pruning callback does to a hopeless trial."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise optuna.TrialPruned()


def test_only_a_completed_run_is_evaluated(make_cfg, tmp_path):
    metrics = train_and_evaluate(make_cfg("evaluate=true", *QUICK), callbacks=[PruneAtOnce()])
    assert metrics["status"] == "pruned" and "evaluation" not in metrics and not (tmp_path / "run" / "evaluation").exists()


def test_evaluate_true_needs_a_checkpoint(make_cfg, tmp_path):
    with pytest.raises(UserError, match="^evaluate=true evaluates the run's best checkpoint, and this run saves none"):
        train_and_evaluate(make_cfg("evaluate=true", *QUICK, "trainer.enable_checkpointing=false"))
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_a_sweep_with_evaluate_true_has_the_evaluation_columns(tmp_path, fake_mnist):
    sweep, rows = multirun(tmp_path, fake_mnist, "variant=ae,vae", "noise=0,0.3", "evaluate=true", *QUICK)
    with open(sweep / "summary.csv") as file:
        header = next(csv.reader(file))
    assert set(header) >= HEADLINE | VAE and header[-3:] == ["status", "error", "folder"]
    assert [r["status"] for r in rows.values()] == ["completed"] * 4
    for overrides, row in rows.items():
        figures = json.loads((sweep / row["job"] / "metrics.json").read_text())["evaluation"]
        assert float(row["linear_probe_accuracy"]) == figures["linear_probe_accuracy"]
        if "variant=vae" in overrides:
            assert float(row["nll_nats"]) == figures["nll_nats"]
        else:  # an autoencoder has no likelihood: its cells stay empty
            assert row["nll_nats"] == row["negative_elbo_nats"] == ""
    assert "| test mse | denoising psnr gaussian 0.3 |" in (sweep / "summary.md").read_text()
