"""`make bench`: the framework's training speed side by side with a lecture-style PyTorch loop and
with the pure compute bound, on the same MNIST subset and number of epochs.

Every run is a fresh process (`benchmarks.runs`), so its start-up time and peak memory are
its own. A shared machine has slow spells of tens of seconds, so the runs take turns within each
repeat, the runs compared (a, b, c) back to back; each figure is the median over repeats, and each
ratio the median of the per-repeat ratios. The
table goes to the run folder (bench.md, bench.json) and replaces this accelerator's section of
docs/benchmarks.md, whose other text is kept.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import lightning
import torch
from omegaconf import DictConfig

from autoencoder.config.validation import RUN, integer, number, one_of, strings, text, validate
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic, write_json
from autoencoder.utils.hardware import cpu_has_native_bf16, uses_gpu

LECTURE, DEFAULTS, COMPUTE = "a: lecture-style loop", "b: framework defaults", "c: compute bound"
# conf/bench.yaml's keys, data.* for the images timed on.
RULES = {
    **RUN,
    "train_size": integer(1),
    "epochs": integer(2),
    "repeats": integer(1),
    "noise": number(0),
    "seed": integer(0, 2**32 - 1),
    "accelerator": one_of("auto", "cpu", "gpu"),
    "overrides": strings(empty=True),
    "framework_variants.*": strings(empty=True),
    "compute_variants.*": strings(empty=True),
    "docs": text(null=True),
}


def machine(device: str) -> str:
    """The CPU model and core count, or the GPU's name, with the library versions."""
    if device == "gpu":
        hardware = f"{torch.cuda.get_device_name()} GPU"
    else:
        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), platform.processor())
        bf16 = "with AVX512-BF16, so bf16 autocast" if cpu_has_native_bf16() else "without native bf16, so fp32"
        hardware = f"{model} CPU, {os.cpu_count()} cores, {bf16} by default"
    return f"{hardware}; torch {torch.__version__}, lightning {lightning.__version__}"


def run_one(kind: str, overrides: list[str], settings: dict, folder: Path) -> dict:
    """One run in its own process; its log stays in `folder`."""
    folder.mkdir(parents=True)
    settings = {
        **settings,
        "overrides": [*settings["overrides"], *overrides],
        "run_dir": str(folder / "run"),
        "result": str(folder / "result.json"),
        "launched_at": time.time(),
    }
    write_json(folder / "settings.json", settings)
    with (folder / "log.txt").open("w") as log:
        code = subprocess.run([sys.executable, "-m", "benchmarks.runs", kind, str(folder / "settings.json")], stdout=log, stderr=subprocess.STDOUT).returncode
    if code:
        raise UserError(f"benchmark run '{kind} {' '.join(overrides)}' failed with exit code {code}; its log is {folder / 'log.txt'}")
    return json.loads((folder / "result.json").read_text())


def median_of(values: list) -> float | None:
    """The median of the values that are not None (None when none is)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    """`value` in format `spec`, or "-" for a missing one."""
    return "-" if value is None else format(value, spec)


def ratios(results: dict[str, list[dict]]) -> list[tuple[str, list[float], str, bool]]:
    """(name, per-repeat values, target, met) for the issue's targets, from paired runs."""

    def per_repeat(fn, a: str, b: str) -> list[float]:
        return [fn(x, y) for x, y in zip(results[a], results[b], strict=True)]

    speed = lambda x, y: x["samples_per_s"] / y["samples_per_s"]  # noqa: E731
    loss = lambda x, y: 100 * (x["val_loss"] / y["val_loss"] - 1)  # noqa: E731
    rows = [
        ("b / a training samples/s", per_repeat(speed, DEFAULTS, LECTURE), ">= 3x", lambda m: m >= 3),
        ("b / c training samples/s", per_repeat(speed, DEFAULTS, COMPUTE), ">= 0.95x", lambda m: m >= 0.95),
        ("b val loss vs a (%)", per_repeat(loss, DEFAULTS, LECTURE), "<= +5%", lambda m: m <= 5),
    ]
    fp32 = next((label for label, runs in results.items() if label.startswith("b:") and runs[0]["precision"] == "32-true"), None)
    if fp32 and results[DEFAULTS][0]["precision"] != "32-true":
        rows.append((f"b val loss ({results[DEFAULTS][0]['precision']}) vs fp32 (%)", per_repeat(loss, DEFAULTS, fp32), "within 2%", lambda m: abs(m) <= 2))
    return [(name, values, target, check(statistics.median(values))) for name, values, target, check in rows]


def render(results: dict[str, list[dict]], cfg: DictConfig, device: str, command: str) -> str:
    """The markdown section: settings, one row per run (medians), and the targets."""
    gpu = device == "gpu"
    lines = [
        f"### {device.upper()}: {machine(device)}",
        "",
        f"`{command}` on {date.today().isoformat()}: {cfg.train_size} training images, {cfg.epochs} epochs, noise {cfg.noise}, "
        f"median of {cfg.repeats} repeats (seeds {cfg.seed}-{cfg.seed + cfg.repeats - 1}). samples/s counts the training steps "
        f"after the first epoch (validation excluded); start-up is process start to first training step.",
        "",
        "| run | precision | samples/s | first epoch samples/s | start-up (s) | peak RSS (MB) |" + (" peak GPU (MB) |" if gpu else "") + " final val loss |",
        "|---|---|---|---|---|---|" + ("---|" if gpu else "") + "---|",
    ]
    for label, runs in results.items():
        median = {key: median_of([run[key] for run in runs]) for key in runs[0] if key != "precision"}
        lines.append(
            f"| {label} | {runs[0]['precision']} | {fmt(median['samples_per_s'], '.0f')} | {fmt(median['first_epoch_samples_per_s'], '.0f')} "
            f"| {fmt(median['startup_s'], '.1f')} | {fmt(median['peak_rss_mb'], '.0f')} |"
            + (f" {fmt(median['peak_gpu_mb'], '.0f')} |" if gpu else "")
            + f" {fmt(median['val_loss'], '.5f')} |"
        )
    lines += ["", "| target | median | per repeat | |", "|---|---|---|---|"]
    for name, values, target, met in ratios(results):
        unit = "x" if "samples" in name else ""
        spec = ".2f" if unit else "+.1f"
        lines.append(
            f"| {name} {target} | {statistics.median(values):{spec}}{unit} | {', '.join(format(v, spec) for v in values)} | {'met' if met else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


def write_section(path: Path, name: str, section: str) -> None:
    """Replace the text between the markers of section `name` (an accelerator, or another
    benchmark's) in `path`; the section is appended when they are missing."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    write_atomic(path, text)


def bench(cfg: DictConfig, command: str, data_overrides: Mapping | None = None) -> dict[str, list[dict]]:
    """Run every kind `cfg.repeats` times, write bench.json, bench.md and the docs section.
    `data_overrides` (the command's `data.*` on the command line) go to every run's data config."""
    validate(cfg, RULES)
    device = "gpu" if uses_gpu(cfg.accelerator) else "cpu"
    out = Path(cfg.output_dir)
    overrides = [*cfg.overrides, *(f"data.{key}={json.dumps(value)}" for key, value in (data_overrides or {}).items())]
    settings = {key: cfg[key] for key in ("train_size", "epochs", "noise", "seed", "accelerator")} | {"overrides": overrides}
    runs = [
        (LECTURE, "lecture", []),
        (DEFAULTS, "framework", []),
        (COMPUTE, "compute", []),
        *[(f"b: {name}", "framework", list(overrides)) for name, overrides in cfg.framework_variants.items()],
        *[(f"c: {name}", "compute", list(overrides)) for name, overrides in cfg.compute_variants.items()],
    ]
    results: dict[str, list[dict]] = {label: [] for label, _, _ in runs}
    for repeat in range(cfg.repeats):
        # Each repeat has its own seed (the val-loss ratios then average over seeds); a, b and c run
        # back to back, forwards then backwards, so that the machine's slow spells pair up.
        settings["seed"] = cfg.seed + repeat
        for i, (label, kind, overrides) in sorted(enumerate(runs), reverse=repeat % 2 == 1):
            result = run_one(kind, overrides, settings, out / f"repeat{repeat}" / f"{i}-{kind}")
            results[label].append(result)
            print(
                f"repeat {repeat + 1}/{cfg.repeats} {label}: {fmt(result['samples_per_s'], '.0f')} samples/s, val loss {fmt(result['val_loss'], '.5f')}",
                flush=True,
            )
    section = render(results, cfg, device, command)
    write_json(out / "bench.json", results)
    (out / "bench.md").write_text(section)
    if cfg.docs:
        write_section(Path(cfg.docs), device, section)
    print(section)
    return results
