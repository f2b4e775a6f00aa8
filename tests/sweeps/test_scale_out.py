"""Many search workers on one study, as on separate machines: each a process of its own started by
the command a user types, on a real PostgreSQL server (tests/sweeps/conftest.py) or a journal file;
workers killed mid-trial and a database that goes away for a while. Trials are tiny (one batch), so
that the storage and the workers' coordination are what the tests exercise."""

import signal
import subprocess
import sys
import time
import zlib

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from tests.sweeps.test_sweeps import tiny

pytestmark = pytest.mark.slow
STUDY = "autoencoder"
ONE_BATCH = ("trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "threads=1")


def worker(tmp_path, fake_mnist, storage: str, name: str, *overrides: str) -> subprocess.Popen:
    """One worker of the search, its sweep folder tmp_path/<name>; a seed of its own (workers
    started together with one seed would begin with the same random trials)."""
    command = [
        sys.executable, "-m", "autoencoder.train", "-m", "hparams_search=optuna", *tiny(fake_mnist, batch_size=False), *ONE_BATCH, "logger=none",
        f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={tmp_path / name}", f"hydra.sweeper.sampler.seed={zlib.crc32(name.encode()) % 1000}",
        "hydra.sweeper.heartbeat=1", "hydra.sweeper.grace_period=20", *overrides,
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(workers: list[subprocess.Popen], timeout: float = 900) -> list[str]:
    """Wait for every worker; their output, after checking each exited cleanly. Workers still
    running when it gives up are killed, so that a failed test leaves none behind."""
    try:
        outputs = [w.communicate(timeout=timeout) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert [w.returncode for w in workers] == [0] * len(workers), [err[-2000:] for _, err in outputs]
    return [out + err for out, err in outputs]


def job_trials(sweep) -> list[int]:
    """The trial (storage id) each job of a worker's sweep folder reported to."""
    return [OmegaConf.load(job / "config.yaml").callbacks.optuna_pruning.trial for job in sweep.iterdir() if (job / "metrics.json").is_file()]


def summarized(sweep) -> int:
    """How many jobs the worker's sweep summary lists. A worker that started after the others had
    claimed every queued trial ran none and wrote no summary."""
    if not (sweep / "summary.md").exists():
        assert not job_trials(sweep) and (sweep / "multirun.yaml").is_file()
        return 0
    return int((sweep / "summary.md").read_text().split(" jobs:")[0].rsplit("\n", 1)[-1])


def check_every_trial_ran_once(study: optuna.Study, tmp_path, names: list[str], planned: int) -> None:
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == planned == len(states), states
    ran = [trial for name in names for trial in job_trials(tmp_path / name)]
    assert sorted(ran) == sorted(t._trial_id for t in study.trials)  # each trial run by one job, once
    assert sum(summarized(tmp_path / name) for name in names) == planned


# With joblib each worker runs its trials two at a time in processes of their own: 8 workers, 16
# job processes, 2 trials each, so that the test stays within a few minutes on 2 cores.
@pytest.mark.parametrize("launcher, n_trials", [((), 6), (("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), 2)], ids=["basic", "joblib"])
def test_eight_workers_on_one_postgresql_study_run_each_planned_trial_once(tmp_path, fake_mnist, postgres, launcher, n_trials):
    names = [f"worker{i}" for i in range(8)]
    finish([worker(tmp_path, fake_mnist, postgres, name, f"hydra.sweeper.n_trials={n_trials}", *launcher) for name in names])
    check_every_trial_ran_once(optuna.load_study(study_name=STUDY, storage=postgres), tmp_path, names, planned=8 * n_trials)


def test_eight_workers_share_a_journal_file(tmp_path, fake_mnist):
    storage = f"journal:///{tmp_path / 'study.log'}"
    names = [f"worker{i}" for i in range(8)]
    finish([worker(tmp_path, fake_mnist, storage, name, "hydra.sweeper.n_trials=2") for name in names])
    study = optuna.load_study(study_name=STUDY, storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))))
    check_every_trial_ran_once(study, tmp_path, names, planned=16)


def test_a_killed_workers_trial_is_failed_and_run_again_by_a_live_worker(tmp_path, fake_mnist, postgres):
    # A short grace period, so that the lost trial comes back soon.
    live = [worker(tmp_path, fake_mnist, postgres, f"live{i}", "hydra.sweeper.n_trials=3", "hydra.sweeper.grace_period=5") for i in range(2)]
    victim = worker(tmp_path, fake_mnist, postgres, "victim", "hydra.sweeper.n_trials=3", "hydra.sweeper.grace_period=5", "trainer.max_epochs=20")
    deadline = time.monotonic() + 600
    while not (tmp_path / "victim" / "0" / "checkpoints").is_dir():  # in its first trial, past the first epoch's checkpoint
        assert time.monotonic() < deadline and victim.poll() is None, victim.stderr.read()[-2000:]
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    finish(live)
    study = optuna.load_study(study_name=STUDY, storage=postgres)
    [failed] = [t for t in study.trials if t.state == TrialState.FAIL]
    [retry] = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == failed.params
    assert failed.datetime_complete is not None and not (tmp_path / "victim" / "0" / "metrics.json").exists()
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 9 and not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert sorted(job_trials(tmp_path / "live0") + job_trials(tmp_path / "live1")) == sorted(t._trial_id for t in done)


def completed(storage: str) -> int:
    if STUDY not in optuna.get_all_study_names(storage):
        return 0
    return len(optuna.load_study(study_name=STUDY, storage=storage).get_trials(states=(TrialState.COMPLETE,)))


def wait_for_trials(storage: str, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 600
    while completed(storage) < count:
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()[-2000:]
        time.sleep(0.2)


def test_a_worker_waits_for_a_restarted_database_and_loses_nothing(tmp_path, fake_mnist, postgres, postgres_server):
    one = worker(tmp_path, fake_mnist, postgres, "sweep", "hydra.sweeper.n_trials=4", "trainer.max_epochs=3")
    wait_for_trials(postgres, 1, one)
    postgres_server.stop()
    time.sleep(5)
    postgres_server.start()
    finish([one])  # whether the worker, a job's report or a job's opening of the study met the outage depends on timing
    states = [t.state for t in optuna.load_study(study_name=STUDY, storage=postgres).trials]
    assert states == [TrialState.COMPLETE] * 4
    assert len(job_trials(tmp_path / "sweep")) == 4


def test_a_worker_that_loses_the_database_for_good_stops_with_one_line(tmp_path, fake_mnist, postgres, postgres_server):
    one = worker(tmp_path, fake_mnist, postgres, "sweep", "hydra.sweeper.n_trials=20", "hydra.sweeper.reconnect_timeout=3")
    wait_for_trials(postgres, 2, one)
    postgres_server.stop()
    try:
        _, stderr = one.communicate(timeout=120)
    finally:
        postgres_server.start()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert one.returncode == 2 and len(errors) == 1 and "error: lost the study's storage postgresql://" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    finished = job_trials(tmp_path / "sweep")
    recorded = optuna.load_study(study_name=STUDY, storage=postgres).get_trials(states=(TrialState.COMPLETE,))
    assert {t._trial_id for t in recorded} <= set(finished) and len(recorded) >= 2
