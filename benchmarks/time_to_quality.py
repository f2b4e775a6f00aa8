"""`make bench-quality`: how long training recipes take to reach a fixed validation loss.

Each run is `python -m autoencoder.train` in its own process, a config's overrides plus a recipe's,
exactly as a user would type it. Its metrics.json holds the val loss of every epoch with the wall
seconds since the fit began (`history`); a run reaches the config's target at the first epoch
whose val loss is at or below it. The recipes of one seed run back to back (forwards, then
backwards on the next seed) so that the machine's slow spells pair up, and every ratio is the
median of the per-seed ratios against the first recipe. Each config's table goes to the run
folder (time_to_quality.md, .json) and replaces that config's section of docs/benchmarks.md, so a
run of one config (`'~configs.default'`) keeps the other's.
"""

import math
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from omegaconf import DictConfig

from autoencoder.config.validation import RUN, integers, number, strings, text, validate
from autoencoder.runs.record import RunRecord
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_json
from autoencoder.utils.hardware import uses_gpu
from benchmarks.suite import fmt, machine, median_of, write_section

# conf/time_to_quality.yaml's keys.
RULES = {
    **RUN,
    "seeds": integers(0, 2**32 - 1, distinct=True),
    "recipes.*": strings(empty=True),
    "configs.*.overrides": strings(empty=True),
    "configs.*.target": number(above=0),
    "configs.*.test_loss": number(above=0),
    "targets.time_ratio": number(above=0),
    "targets.test_loss_percent": number(0),
    "overrides": strings(empty=True),
    "docs": text(null=True),
}


def first_reach(history: list[dict], target: float) -> dict | None:
    """The first validated epoch whose val loss is at or below `target` (None: never)."""
    return next((entry for entry in history if entry["val_loss"] <= target), None)


def read_run(folder: Path, target: float) -> dict:
    """What a finished run in `folder` reached and when, from its record (metrics.json)."""
    record = RunRecord.read(folder)
    reached = first_reach(record.history, target)
    return {
        "reached_epoch": reached and reached["epoch"],
        "reached_seconds": reached and reached["seconds"],
        "fit_seconds": record.history[-1]["seconds"],
        "epochs": record.epochs,
        "best_val_loss": record.best_val_loss,
        "test_loss": record.test_loss,
        "history": record.history,
    }


def train_run(overrides: list[str], folder: Path, target: float) -> dict:
    """One training run in its own process, in `folder`; what it reached, when, and its run time."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with folder.with_suffix(".log").open("w") as log:
        argv = [sys.executable, "-m", "autoencoder.train", *overrides, f"hydra.run.dir={folder}"]
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    if code:
        raise UserError(f"benchmark run '{' '.join(overrides)}' failed with exit code {code}; its log is {folder.with_suffix('.log')}")
    return read_run(folder, target) | {"run_seconds": round(time.perf_counter() - started, 2)}


def paired_ratios(runs: list[dict], baseline: list[dict], key: str) -> list[float]:
    """Per-seed `key` ratios against the baseline recipe's run of the same seed; a seed whose
    baseline never reached the target is left out, one whose recipe never did counts as inf."""
    return [math.inf if run[key] is None else run[key] / base[key] for run, base in zip(runs, baseline, strict=True) if base[key] is not None]


def to_baseline_best(runs: list[dict], baseline: list[dict]) -> list[float]:
    """Per seed: the wall time a run took to reach the best val loss of the baseline's run of that
    seed, over the time the baseline took to reach it (inf: never reached). Defined even when the
    baseline misses the config's target."""
    ratios = []
    for run, base in zip(runs, baseline, strict=True):
        best = min(base["history"], key=lambda entry: entry["val_loss"])
        reached = first_reach(run["history"], best["val_loss"])
        ratios.append(math.inf if reached is None else reached["seconds"] / best["seconds"])
    return ratios


def times(ratio: float) -> str:
    """A ratio as `0.28x`, or `never` for a run that never reached what it was timed to."""
    return "never" if math.isinf(ratio) else f"{ratio:.2f}x"


def render(name: str, by_recipe: dict[str, list[dict]], cfg: DictConfig, command: str) -> str:
    """One config's markdown section: a row per recipe (medians over seeds), then the targets."""
    config, device = cfg.configs[name], "gpu" if uses_gpu("auto") else "cpu"
    max_ratio, max_loss = cfg.targets.time_ratio, cfg.targets.test_loss_percent
    baseline_name, baseline = next(iter(by_recipe.items()))
    lines = [
        f"### {name} (`{' '.join(config.overrides) or 'the defaults'}`): {machine(device)}",
        "",
        f"`{command}` on {date.today().isoformat()}, seeds {', '.join(map(str, cfg.seeds))}; medians over the seeds. "
        f"Target: val loss <= {config.target}; documented test loss {config.test_loss}. Time to target: wall seconds from the "
        "start of the fit (after the sanity check) to the end of the first validation at or below the target; fit: the "
        "whole fit, validation included; run: the whole process (start-up, fit and test).",
        "",
        "| recipe | reached | epochs to target | time to target (s) | fit (s) | run (s) | best val loss | test loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe, runs in by_recipe.items():
        median = {key: median_of([run[key] for run in runs]) for key in runs[0] if key != "history"}
        reached = sum(run["reached_epoch"] is not None for run in runs)
        shown = f"{recipe} (`{' '.join(cfg.recipes[recipe])}`)" if cfg.recipes[recipe] else recipe
        lines.append(
            f"| {shown} | {reached}/{len(runs)} | {fmt(median['reached_epoch'], 'g')} "
            f"| {fmt(median['reached_seconds'], '.0f')} | {fmt(median['fit_seconds'], '.0f')} | {fmt(median['run_seconds'], '.0f')} "
            f"| {fmt(median['best_val_loss'], '.5f')} | {fmt(median['test_loss'], '.5f')} |"
        )
    lines += ["", f"| against {baseline_name} | median | per seed | |", "|---|---|---|---|"]
    for recipe, runs in list(by_recipe.items())[1:]:
        rows = (
            ("time to target", paired_ratios(runs, baseline, "reached_seconds")),
            (f"time to {baseline_name}'s best val loss", to_baseline_best(runs, baseline)),
            ("fit time", paired_ratios(runs, baseline, "fit_seconds")),
        )
        for label, ratios in rows:
            if ratios:
                median = statistics.median(ratios)
                verdict = "met" if median <= max_ratio else "**missed**"
                lines.append(f"| {recipe}: {label} <= {max_ratio:.2f}x | {times(median)} | {', '.join(map(times, ratios))} | {verdict} |")
            else:
                lines.append(f"| {recipe}: {label} <= {max_ratio:.2f}x | - | {baseline_name} never reached it | - |")
        loss = median_of([100 * (run["test_loss"] / config.test_loss - 1) for run in runs])
        lines.append(f"| {recipe}: test loss vs documented <= +{max_loss:g}% | {loss:+.1f}% | | {'met' if loss <= max_loss else '**missed**'} |")
    return "\n".join(lines) + "\n"


def time_to_quality(cfg: DictConfig, command: str) -> dict[str, dict[str, list[dict]]]:
    """Train every config with every recipe once per seed; write the table and return the runs."""
    validate(cfg, RULES)
    out = Path(cfg.output_dir)
    recipes = list(cfg.recipes)
    results = {name: {recipe: [] for recipe in recipes} for name in cfg.configs}
    for i, seed in enumerate(cfg.seeds):
        for name, config in cfg.configs.items():
            for r, recipe in sorted(enumerate(recipes), reverse=i % 2 == 1):
                overrides = [*cfg.overrides, *config.overrides, *cfg.recipes[recipe], f"seed={seed}"]
                run = train_run(overrides, out / name / f"recipe{r}-seed{seed}", config.target)
                results[name][recipe].append(run)
                print(
                    f"seed {seed} {name} / {recipe}: target {'at epoch ' + str(run['reached_epoch']) if run['reached_epoch'] else 'not reached'}"
                    f" ({fmt(run['reached_seconds'], '.0f')} s), fit {run['fit_seconds']:.0f} s, test loss {run['test_loss']:.5f}",
                    flush=True,
                )
    sections = {name: render(name, by_recipe, cfg, command) for name, by_recipe in results.items()}
    write_json(out / "time_to_quality.json", results)
    (out / "time_to_quality.md").write_text("\n".join(sections.values()))
    for name, section in sections.items():
        if cfg.docs:
            write_section(Path(cfg.docs), f"time-to-quality:{name}", section)
        print(section)
    return results
