"""`make bench-sweeps`: how fast a search's storage lets 1, 2, 4 and 8 workers go, on SQLite, the
journal file and PostgreSQL (a real server, benchmarks.postgres).

Each worker is a process of its own, as on separate machines, and does what a search worker and its
jobs do to the study, through the same code (autoencoder.sweeps): it queues its share of the
trials, then claims and samples one (TPE, "ask"), and for each of its 3 epochs sleeps `work`/3
seconds (the training, tiny so that the storage is visible) and reports the loss and asks the
median pruner, as the job does after opening the study itself ("report"); then it tells the study
("tell"), with its heartbeat beating meanwhile. Every study holds `trials` trials in all, split
evenly over the workers. The table gives the trials finished per minute (first claim to last tell)
against what the sleeping alone allows (a pruned trial sleeps less), the median storage time
per trial, and the CPU time each trial cost the workers and, for PostgreSQL, the server's processes:
on one machine they share its cores, so the CPU times say which of them a search on machines of
their own would run out of first.
"""

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from autoencoder.sweeps.heartbeat import Heartbeat
from autoencoder.sweeps.optuna_study import claim, plan, sample
from autoencoder.sweeps.storage import heartbeat_of, open_storage
from autoencoder.utils.tables import markdown_table
from benchmarks.postgres import PostgresServer

SPACE = {"optimizer.lr": FloatDistribution(1e-3, 3e-2, log=True), "model.latent_dim": CategoricalDistribution([2, 4, 8, 16, 32])}
STUDY = "bench"
EPOCHS = 3


def worker(url: str, n_trials: int, work: float, seed: int) -> None:
    """One worker: prints a JSON line per trial with its storage times (s) and its start and end,
    then one with the CPU time (s) the worker used from its first claim on (its imports and its
    opening of the study left out: a search worker pays those once)."""
    storage = open_storage(url, heartbeat=30, grace_period=120, retries=3)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler)
    plan(study, n_trials)
    rng, cpu = random.Random(seed), time.process_time()
    while True:
        start = time.perf_counter()
        optuna.storages.fail_stale_trials(study)
        if (trial_id := claim(study, storage)) is None:
            print(json.dumps({"cpu": time.process_time() - cpu}), flush=True)
            return
        trial = sample(study, trial_id, SPACE)
        asked = time.perf_counter()
        report = 0.0
        with Heartbeat(storage, [trial_id], heartbeat_of(storage)) if heartbeat_of(storage) else nullcontext():
            began = time.perf_counter()
            pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)  # the default hydra/sweeper/pruner
            job_study = optuna.load_study(study_name=STUDY, storage=open_storage(url, made=True), pruner=pruner)
            job_trial = optuna.Trial(job_study, trial_id)
            report += time.perf_counter() - began
            loss, slept = rng.uniform(0.02, 0.2), 0.0
            for epoch in range(EPOCHS):
                time.sleep(work / EPOCHS)
                slept += work / EPOCHS
                loss *= 0.8
                began = time.perf_counter()
                job_trial.report(loss, epoch)
                pruned = job_trial.should_prune()
                report += time.perf_counter() - began
                if pruned:
                    break
        began = time.perf_counter()
        study.tell(trial, None if pruned else loss, state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE)
        end = time.perf_counter()
        print(json.dumps({"ask": asked - start, "report": report, "tell": end - began, "slept": slept, "start": start, "end": end}), flush=True)


def measure(url: str, workers: int, trials: int, work: float, server: PostgresServer | None = None) -> dict:
    """The run's figures; with the `server` the study is on, also the CPU time its processes used."""
    optuna.create_study(study_name=STUDY, storage=open_storage(url))
    command = [sys.executable, "-m", "benchmarks.sweep_storage", "--worker", url, "--work", str(work)]
    server_cpu = server.cpu_seconds() if server else 0.0
    processes = [subprocess.Popen([*command, "--trials", str(trials // workers), "--seed", str(i)], stdout=subprocess.PIPE, text=True) for i in range(workers)]
    lines = [json.loads(line) for p in processes for line in p.communicate()[0].splitlines()]
    if server:
        time.sleep(1)  # the backends of the workers' connections end and are counted with the server's reaped children
        server_cpu = server.cpu_seconds() - server_cpu
    rows, cpu = [r for r in lines if "cpu" not in r], sum(r["cpu"] for r in lines if "cpu" in r)
    if any(p.returncode for p in processes) or len(rows) != trials:
        raise RuntimeError(f"a worker failed: {len(rows)} of {trials} trials")
    # perf_counter is CLOCK_MONOTONIC on Linux: one clock for every process of the machine.
    minutes = (max(r["end"] for r in rows) - min(r["start"] for r in rows)) / 60
    storage = [1000 * (r["ask"] + r["report"] + r["tell"]) for r in rows]
    return {
        "trials_per_min": trials / minutes,
        "bound": workers * 60 / statistics.mean(r["slept"] for r in rows),
        **{part: 1000 * statistics.median(r[part] for r in rows) for part in ("ask", "report", "tell")},
        "storage_ms": statistics.median(storage),
        "storage_p90_ms": statistics.quantiles(storage, n=10)[-1],
        "worker_cpu_ms": 1000 * cpu / trials,
        "server_cpu_ms": 1000 * server_cpu / trials if server else None,
    }


def table(results: list[tuple[str, int, dict]], trials: int, work: float) -> str:
    head = ["storage", "workers", "trials/min", "sleep-only bound", "ask ms", "report ms", "tell ms", "storage ms per trial (median, p90)",
            "worker CPU ms per trial", "server CPU ms per trial"]  # fmt: skip
    rows = (
        [name, n, f"{r['trials_per_min']:.0f}", f"{r['bound']:.0f}", *(f"{r[part]:.0f}" for part in ("ask", "report", "tell")),
         f"{r['storage_ms']:.0f}, {r['storage_p90_ms']:.0f}", f"{r['worker_cpu_ms']:.0f}",
         "" if r["server_cpu_ms"] is None else f"{r['server_cpu_ms']:.0f}"]
        for name, n, r in results
    )  # fmt: skip
    return f"{trials} trials of {work:g} s per study ({EPOCHS} reports each), {os.cpu_count()} CPUs\n\n" + markdown_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--work", type=float, default=0.3, help="seconds of (sleeping) training per trial")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.trials, args.work, args.seed)
        return
    if any(args.trials % n for n in args.workers) or args.work <= 0 or not math.isfinite(args.work):
        parser.error("--trials must split evenly over every --workers count, and --work must be a number > 0")
    server = PostgresServer()
    server.start()
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for n in args.workers:
                urls = {
                    "SQLite": f"sqlite:///{Path(folder) / f'{n}.db'}",
                    "journal file": f"journal:///{Path(folder) / f'{n}.log'}",
                    "PostgreSQL 15": server.database(f"bench{n}"),
                }
                for name, url in urls.items():
                    results.append((name, n, measure(url, n, args.trials, args.work, server if name.startswith("PostgreSQL") else None)))
                    print(f"{name}, {n} workers: {results[-1][2]['trials_per_min']:.0f} trials/min", file=sys.stderr, flush=True)
    finally:
        server.remove()
    print(table(sorted(results, key=lambda r: (r[0], r[1])), args.trials, args.work))


if __name__ == "__main__":
    main()
