import csv
import json

import pytest
from omegaconf import OmegaConf

from autoencoder.sweeps.summary import COLUMNS, SweepSummary, seed_groups, summarize
from autoencoder.utils.errors import UserError
from tests.conftest import run_module


def job(sweep, name, overrides, metrics=None):
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def done(val, test):
    return {"best_val_loss": val, "test_loss": test, "epochs": 3, "train_samples_per_s": 1500.0, "status": "completed"}


@pytest.fixture
def sweep(tmp_path):
    """A half-finished sweep: latent 2 and 8 over two seeds, one failed job, one pruned, one
    interrupted, one still running."""
    sweep = tmp_path / "sweep"
    job(sweep, "0", ["model.latent_dim=2", "seed=1"], done(0.040, 0.041))
    job(sweep, "1", ["model.latent_dim=2", "seed=2"], done(0.042, 0.043))
    job(sweep, "2", ["model.latent_dim=8", "seed=1"], done(0.010, 0.011))
    job(sweep, "3", ["model.latent_dim=8", "seed=2"], done(0.012, 0.013))
    job(sweep, "4", ["model.latent_dim=-1", "seed=1"], {"status": "failed", "error": "model.latent_dim must be a positive integer, got -1"})
    job(sweep, "5", ["model.latent_dim=32", "seed=1"])  # started, no metrics.json yet
    job(sweep, "6", ["model.latent_dim=4", "seed=1"], {"status": "pruned", "epochs": 2, "pruned_at_epoch": 2, "best_val_loss": 0.001, "val_loss": 0.3})
    stopped = {"status": "interrupted", "signal": "SIGTERM", "epoch": 3, "batch": 120, "global_step": 1000, "best_val_loss": 0.05, "epochs": 2}
    job(sweep, "7", ["model.latent_dim=16", "seed=1"], stopped)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")  # not a job
    return sweep


def test_summary_rows_sorted_with_failed_and_unfinished_jobs(sweep):
    rows = summarize(sweep)
    # completed jobs first: a pruned job's best val loss is from fewer epochs, however low
    assert [r["job"] for r in rows] == ["2", "3", "0", "1", "6", "7", "4", "5"]
    assert [r["status"] for r in rows] == ["completed"] * 4 + ["pruned", "interrupted", "failed", "unfinished"]
    with open(sweep / "summary.csv") as file:
        saved = list(csv.DictReader(file))
    assert [r["job"] for r in saved] == ["2", "3", "0", "1", "6", "7", "4", "5"]
    assert saved[0]["overrides"] == "model.latent_dim=8 seed=1" and float(saved[0]["best_val_loss"]) == 0.010
    assert saved[5]["error"] == "SIGTERM in epoch 3 after batch 120"
    assert saved[6]["error"] == "model.latent_dim must be a positive integer, got -1"
    text = (sweep / "summary.md").read_text()
    assert "8 jobs: 4 completed, 1 pruned, 1 interrupted, 1 failed, 1 unfinished" in text
    assert "| interrupted: SIGTERM in epoch 3 after batch 120 |" in text
    assert "| failed: model.latent_dim must be a positive integer, got -1 |" in text
    assert "| pruned after epoch 2 |" in text
    assert (sweep / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_best_job_comes_with_the_command_that_trains_it_again(sweep, tmp_path):
    search = tmp_path / "search"
    job(
        search, "0", ["hparams_search=optuna", "data.train_size=512", "hydra.sweeper.n_trials=2", "optimizer.lr=0.002", "model.latent_dim=8"], done(0.02, 0.021)
    )
    job(
        search,
        "1",
        ["hparams_search=optuna", "data.train_size=512", "hydra.sweeper.n_trials=2", "optimizer.lr=0.0001", "model.latent_dim=4"],
        done(0.05, 0.051),
    )
    summarize(search)
    text = (search / "summary.md").read_text()
    assert f"Best: job 0 ({search / '0'}), best val loss 0.02000." in text
    assert "\n    python -m autoencoder.train data.train_size=512 optimizer.lr=0.002 model.latent_dim=8\n" in text
    summarize(sweep)
    assert "python -m autoencoder.train model.latent_dim=8 seed=1\n" in (sweep / "summary.md").read_text()


def test_jobs_differing_only_in_seed_are_grouped(sweep):
    groups = seed_groups(summarize(sweep))
    assert [g["overrides"] for g in groups] == [["model.latent_dim=8"], ["model.latent_dim=2"]]
    mean, std = groups[0]["best_val_loss"]
    assert mean == pytest.approx(0.011) and std == pytest.approx(0.0014142, rel=1e-3)
    assert "| `model.latent_dim=8` | 2 | 0.01100 ± 0.00141 | 0.01200 ± 0.00141 |" in (sweep / "summary.md").read_text()


def test_evaluation_figures_become_columns_left_empty_for_jobs_without_them(sweep, tmp_path):
    evaluated = tmp_path / "evaluated"
    job(evaluated, "0", ["variant=ae"], done(0.02, 0.021) | {"evaluation": {"test_mse": 0.0201, "knn_accuracy": 0.9}})
    job(evaluated, "1", ["variant=vae"], done(0.03, 0.031) | {"evaluation": {"test_mse": 0.0302, "knn_accuracy": 0.8, "nll_nats": 95.25}})
    job(evaluated, "2", ["variant=sparse"], done(0.04, 0.041))  # trained without evaluate=true
    summarize(evaluated)
    with open(evaluated / "summary.csv") as file:
        reader = csv.DictReader(file)
        saved = list(reader)
    assert reader.fieldnames == [*COLUMNS[:6], "test_mse", "knn_accuracy", "nll_nats", "status", "error", "folder"]
    assert [(r["test_mse"], r["knn_accuracy"], r["nll_nats"]) for r in saved] == [("0.0201", "0.9", ""), ("0.0302", "0.8", "95.25"), ("", "", "")]
    text = (evaluated / "summary.md").read_text()
    assert "| samples/s | test mse | knn accuracy | nll nats | status |" in text
    assert "| 1500 | 0.02010 | 0.9000 | - | completed |" in text and "| 1500 | 0.03020 | 0.8000 | 95.25 | completed |" in text
    summarize(sweep)  # no job evaluated: the columns of before
    with open(sweep / "summary.csv") as file:
        assert csv.DictReader(file).fieldnames == list(COLUMNS)


def test_jobs_of_different_objectives_are_ranked_within_each_and_no_best_is_picked(tmp_path):
    study = tmp_path / "study"
    # a VAE's val loss is nats per image, an AE's an MSE: 0.004 < 95 says nothing
    job(study, "0", ["variant=ae", "noise=0"], done(0.0040, 0.0041))
    job(study, "1", ["variant=ae", "noise=0.3"], done(0.0030, 0.0031))
    job(study, "2", ["variant=vae", "noise=0"], done(95.0, 95.1))
    job(study, "3", ["variant=vae", "noise=0.3"], done(99.0, 99.1))
    job(study, "4", ["variant=vae", "variant.beta=4", "noise=0"], done(90.0, 90.1))
    job(study, "5", ["variant=ae", "noise=0.0"], done(0.0035, 0.0036))  # the same task as noise=0
    rows = summarize(study)
    assert [r["job"] for r in rows] == ["5", "0", "1", "2", "3", "4"]
    text = (study / "summary.md").read_text()
    assert "ranked within each, and no best job is picked" in text and "Best:" not in text
    same = tmp_path / "same"
    job(same, "0", ["variant=vae", "noise=0.3", "model.latent_dim=2"], done(95.0, 95.1))
    job(same, "1", ["variant=vae", "noise=0.3", "model.latent_dim=8"], done(94.0, 94.1))
    assert [r["job"] for r in summarize(same)] == ["1", "0"]
    assert "Best: job 1" in (same / "summary.md").read_text()


def test_jobs_at_different_noise_levels_or_corruptions_are_different_tasks(tmp_path):
    # a plain autoencoder's val loss is lower than a denoiser's: its task is easier, not its model better
    sweep = tmp_path / "noise"
    job(sweep, "0", ["noise=0", "model.latent_dim=2"], done(0.040, 0.041))
    job(sweep, "1", ["noise=0.3", "model.latent_dim=2"], done(0.043, 0.044))
    job(sweep, "2", ["noise=0", "model.latent_dim=8"], done(0.020, 0.021))
    job(sweep, "3", ["noise=0.3", "model.latent_dim=8"], done(0.025, 0.026))
    assert [r["job"] for r in summarize(sweep)] == ["2", "0", "3", "1"]
    assert "Best:" not in (sweep / "summary.md").read_text()
    corruptions = tmp_path / "corruptions"
    job(corruptions, "0", ["corruption=gaussian", "noise=0.3"], done(0.030, 0.031))
    job(corruptions, "1", ["corruption=masking", "noise=0.3"], done(0.020, 0.021))
    assert [r["job"] for r in summarize(corruptions)] == ["0", "1"]
    assert "no best job is picked" in (corruptions / "summary.md").read_text()


def test_rebuilding_replaces_the_summary(sweep):
    summarize(sweep)
    (sweep / "5" / "metrics.json").write_text(json.dumps(done(0.005, 0.006)))  # the last job finished
    rows = summarize(sweep)
    assert rows[0]["job"] == "5" and rows[0]["status"] == "completed"
    assert "1 unfinished" not in (sweep / "summary.md").read_text()


def test_not_a_sweep_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        summarize(tmp_path / "nowhere")
    with pytest.raises(UserError, match="holds no job folders"):
        summarize(tmp_path)


def test_command_line(sweep, tmp_path):
    ok = run_module("autoencoder.summarize", str(sweep), cwd=tmp_path)
    assert ok.returncode == 0 and "| 1 | 2 | `model.latent_dim=8 seed=1` |" in ok.stdout
    bad = run_module("autoencoder.summarize", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: sweep folder") and "Traceback" not in bad.stderr


def test_a_multirun_that_ran_no_job_ends_without_a_summary(tmp_path, capsys):
    # A search worker that found every trial of a shared study claimed by others.
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert capsys.readouterr().out == f"sweep summary: none, no job ran in {tmp_path}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multirun.yaml"]
