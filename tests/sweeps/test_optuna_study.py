import json
import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from autoencoder.sweeps.optuna_study import job_verdict, plan, search_space, trial_overrides
from autoencoder.sweeps.storage import open_storage
from autoencoder.utils.errors import UserError


def test_optuna_and_sqlalchemy_are_current_majors_and_nothing_caps_them():
    assert int(optuna.__version__.split(".")[0]) >= 4, optuna.__version__
    assert int(sqlalchemy.__version__.split(".")[0]) >= 2, sqlalchemy.__version__
    pinned = [r for r in requires("autoencoder") if re.match(r"[\w.-]+", r).group() in ("optuna", "sqlalchemy", "hydra-optuna-sweeper")]  # not optuna-dashboard
    assert sorted(pinned) == ["optuna>=4", "sqlalchemy>=2"]


def test_search_space_from_sweep_syntax():
    params = {
        "optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
        "model.latent_dim": "choice(2, 8, 32)",
        "trainer.max_epochs": "range(2, 11, 4)",
        "data.batch_size": "tag(int, interval(32, 256))",
        "noise": "choice(0.0, 0.3)",
    }
    fixed, space = search_space(params, ["noise=0.1", "+x=1", "~early_stopping", "model=choice(conv, mlp)"])
    assert fixed == ["noise=0.1", "+x=1", "~early_stopping"]  # a fixed key leaves the search space
    assert space == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "model.latent_dim": CategoricalDistribution([2, 8, 32]),
        "trainer.max_epochs": IntDistribution(2, 10, step=4),
        "data.batch_size": IntDistribution(32, 256),
        "model": CategoricalDistribution(["conv", "mlp"]),
    }
    assert trial_overrides({"model": "mlp", "optimizer.lr": 0.003}) == ["model=mlp", "++optimizer.lr=0.003"]  # a setting a node may leave to its class


def test_a_command_line_sweep_replaces_the_configured_one_and_a_configured_value_is_fixed():
    fixed, space = search_space({"noise": "choice(0.0, 0.3)", "seed": "3"}, ["noise=interval(0, 0.5)"])
    assert space == {"noise": FloatDistribution(0.0, 0.5)} and fixed == ["seed=3"]


def test_a_sweep_optuna_cannot_search_is_refused():
    with pytest.raises(UserError, match=r"noise=glob\(\*\) is not a sweep Optuna can search"):
        search_space({}, ["noise=glob(*)"])


def test_storage_urls(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    assert optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").study_name == study.study_name
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match=r"hydra.sweeper.storage=sqlite:///.*/a_file/study.db cannot be opened \(.*unable to open database file"):
        open_storage(f"sqlite:///{tmp_path / 'a_file' / 'study.db'}")
    for bad in (None, "study.db"):
        with pytest.raises(UserError, match="hydra.sweeper.storage must be a database URL"):
            open_storage(bad)
    with pytest.raises(UserError, match="cannot be opened"):
        open_storage("nosuchdb://host/db")


def job(folder: Path, metrics: dict | None, status: JobStatus = JobStatus.COMPLETED) -> JobReturn:
    """A job's return and its folder as a sweep leaves it: Hydra's overrides.yaml, and metrics.json once it ended."""
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.001\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return JobReturn(status=status, hydra_cfg=OmegaConf.create({"hydra": {"runtime": {"output_dir": str(folder)}}}))


@pytest.mark.parametrize(
    "metrics, status, verdict",
    [
        ({"status": "completed", "best_val_loss": 0.02}, JobStatus.COMPLETED, (TrialState.COMPLETE, 0.02)),
        ({"status": "pruned", "best_val_loss": 0.01, "pruned_at_epoch": 1}, JobStatus.COMPLETED, (TrialState.PRUNED, None)),
        ({"status": "failed", "error": "noise must be ..."}, JobStatus.COMPLETED, (TrialState.FAIL, None)),
        ({"status": "completed", "best_val_loss": None}, JobStatus.COMPLETED, (TrialState.FAIL, None)),  # nothing checkpointed
        ({"status": "completed", "best_val_loss": float("nan")}, JobStatus.COMPLETED, (TrialState.FAIL, None)),
        (None, JobStatus.COMPLETED, (TrialState.FAIL, None)),  # no metrics.json
        ({"status": "completed", "best_val_loss": 0.02}, JobStatus.FAILED, (TrialState.FAIL, None)),  # the job raised
    ],
)
def test_a_job_is_told_to_its_trial_as_its_metrics_say(tmp_path, metrics, status, verdict):
    assert job_verdict(job(tmp_path / "run", metrics, status)) == verdict


@pytest.mark.slow
def test_workers_opening_a_new_database_at_once_all_get_it(tmp_path):
    # They race to create its tables and to record their version (without the retry, 7 of 20 such
    # openings failed on the development machine); every one must come through.
    opener = "import sys; from autoencoder.sweeps.storage import open_storage; open_storage(sys.argv[1])"
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'study{round_}.db'}"
        workers = [subprocess.Popen([sys.executable, "-c", opener, url], stderr=subprocess.PIPE, text=True) for _ in range(4)]
        assert [w.wait(timeout=120) for w in workers] == [0] * 4, [w.stderr.read()[-500:] for w in workers]


CLAIMER = """
import sys
import optuna
from autoencoder.sweeps.optuna_study import claim
from autoencoder.sweeps.storage import open_storage
storage = open_storage(sys.argv[1])
study = optuna.load_study(study_name="queue", storage=storage)
while (trial_id := claim(study, storage)) is not None:
    print(trial_id, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_workers_claiming_from_one_queue_never_take_the_same_trial(tmp_path, kind, request):
    # Before SQLite's transactions took the write lock as they began, 8 such workers claimed 198
    # times from a queue of 160 trials.
    url = {"sqlite": f"sqlite:///{tmp_path / 'study.db'}", "journal": f"journal:///{tmp_path / 'study.log'}"}.get(kind) or request.getfixturevalue("postgres")
    plan(optuna.create_study(study_name="queue", storage=open_storage(url)), 60)
    workers = [subprocess.Popen([sys.executable, "-c", CLAIMER, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    claimed = [int(line) for w in workers for line in w.communicate(timeout=300)[0].split()]
    assert [w.returncode for w in workers] == [0] * 6
    assert len(claimed) == 60 and len(set(claimed)) == 60
