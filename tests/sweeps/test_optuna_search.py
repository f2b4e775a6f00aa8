"""The Optuna search end to end, run as a user would: `python -m autoencoder.train -m hparams_search=optuna ...`."""

import json
import subprocess
import sys

import optuna
import pytest
from omegaconf import OmegaConf

from tests.conftest import run_module
from tests.sweeps.test_sweeps import tiny

pytestmark = pytest.mark.slow
STUDY = "autoencoder"


def search(tmp_path, fake_mnist, *overrides: str, folder: str = "sweep") -> list[str]:
    """The command of a search on the fake data, into tmp_path/<folder>, with the study in tmp_path."""
    return [
        sys.executable, "-m", "autoencoder.train", "-m", "hparams_search=optuna", *tiny(fake_mnist, batch_size=False), "logger=none",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}", f"hydra.sweep.dir={tmp_path / folder}", *overrides,
    ]  # fmt: skip


def run(command: list[str], cwd) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def jobs(sweep) -> list[dict]:
    """Each job folder's metrics.json and the trial (storage id) its config reported to."""
    return [
        json.loads((job / "metrics.json").read_text()) | {"trial": OmegaConf.load(job / "config.yaml").callbacks.optuna_pruning.trial}
        for job in sorted(sweep.iterdir())
        if job.is_dir()
    ]


def test_a_search_resumes_from_its_sqlite_study_without_repeating_trials(tmp_path, fake_mnist):
    for trials in (3, 2):
        run(search(tmp_path, fake_mnist, f"hydra.sweeper.n_trials={trials}", folder=f"sweep{trials}"), tmp_path)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 5 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert len({t.params["optimizer.lr"] for t in study.trials}) == 5  # the seeded sampler went on, not over
    assert {"optimizer.lr", "model.latent_dim", "data.batch_size"} == set(study.best_params)
    assert study.best_value == min(t.value for t in study.trials)
    reported = {j["best_val_loss"] for s in ("sweep3", "sweep2") for j in jobs(tmp_path / s)}
    assert reported == {t.value for t in study.trials}


def test_a_hopeless_trial_is_pruned_and_the_summary_says_so(tmp_path, fake_mnist):
    # A finished trial whose val loss was 1e-6 after every epoch: any real trial is worse than it.
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name=STUDY, storage=storage)
    lr = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"optimizer.lr": 1e-3}, distributions=lr, value=1e-6, intermediate_values=dict.fromkeys(range(3), 1e-6)))
    one_trial = ("hydra.sweeper.n_trials=1", "trainer.max_epochs=3")
    result = run(search(tmp_path, fake_mnist, *one_trial, "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0"), tmp_path)
    [pruned] = jobs(tmp_path / "sweep")
    assert pruned["status"] == "pruned" and pruned["pruned_at_epoch"] == 1 and pruned["epochs"] == 1 and pruned["test_loss"] is None
    trial = optuna.load_study(study_name=STUDY, storage=storage).trials[1]
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {0: pytest.approx(pruned["val_loss"])}
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "1 jobs: 0 completed, 1 pruned" in summary and "| pruned after epoch 1 |" in summary
    assert "pruned by the Optuna search after epoch 1" in result.stdout
    # The same search without a pruner trains to the end.
    run(search(tmp_path, fake_mnist, *one_trial, "hydra/sweeper/pruner=none", folder="unpruned"), tmp_path)
    [finished] = jobs(tmp_path / "unpruned")
    assert finished["status"] == "completed" and finished["epochs"] == 3
    trial = optuna.load_study(study_name=STUDY, storage=storage).trials[2]
    assert trial.state.name == "COMPLETE" and sorted(trial.intermediate_values) == [0, 1, 2] and trial.value == finished["best_val_loss"]


def test_two_workers_share_one_study_and_no_trial_runs_twice(tmp_path, fake_mnist):
    # One worker runs its trials two at a time through joblib; the other one at a time, started together.
    parallel = search(tmp_path, fake_mnist, "hydra.sweeper.n_trials=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", folder="a")
    single = search(tmp_path, fake_mnist, "hydra.sweeper.n_trials=2", "threads=1", "hydra.sweeper.sampler.seed=7", folder="b")
    workers = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for command in (parallel, single)]
    assert all(w.wait(timeout=600) == 0 for w in workers), [w.stderr.read()[-2000:] for w in workers]
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)
    ran = jobs(tmp_path / "a") + jobs(tmp_path / "b")
    assert len({j["trial"] for j in ran}) == 4
    assert sorted(j["best_val_loss"] for j in ran) == sorted(t.value for t in study.trials)


def test_a_failed_trial_does_not_end_the_search(tmp_path, fake_mnist):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name=STUDY, storage=storage)
    for noise in (1.5, 0.3):  # the first is refused by the masking corruption
        study.enqueue_trial({"noise": noise})
    # The queued trials are run first, then the one this search queues (n_trials=1), its noise sampled.
    run(search(tmp_path, fake_mnist, "hydra.sweeper.n_trials=1", "corruption=masking", "noise=choice(0.3, 1.5)"), tmp_path)
    states = [t.state.name for t in optuna.load_study(study_name=STUDY, storage=storage).trials]
    assert states[:2] == ["FAIL", "COMPLETE"] and len(states) == 3 and states[2] in ("FAIL", "COMPLETE")
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "3 jobs: " in summary and "failed: noise must be a number in [0, 1] for the Masking corruption, got 1.5" in summary


def test_the_best_trial_trains_again_from_the_command_the_summary_gives(tmp_path, fake_mnist):
    result = run(search(tmp_path, fake_mnist, "hydra.sweeper.n_trials=2", "trainer.deterministic=true"), tmp_path)
    command = result.stdout.split("train it again with:\n")[1].splitlines()[0].split()
    assert command[:3] == ["python", "-m", "autoencoder.train"]
    best = min((j for j in jobs(tmp_path / "sweep")), key=lambda j: j["best_val_loss"])
    again = run_module(*command[2:], f"hydra.run.dir={tmp_path / 'again'}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["best_val_loss"] == pytest.approx(best["best_val_loss"], rel=1e-6)


def test_trials_run_as_submitit_jobs(tmp_path, fake_mnist):
    # The SLURM path on one machine: each trial a submitit job that reports to the study from its own process.
    run(search(tmp_path, fake_mnist, "hydra.sweeper.n_trials=2", "hydra/launcher=submitit_local", "trainer.max_epochs=2"), tmp_path)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2 and all(sorted(t.intermediate_values) == [0, 1] for t in study.trials)
