"""Turn a sweep folder into an answer (`python -m autoencoder.summarize <sweep folder>`).

A multirun writes one folder per job (`<sweep>/<n>/`, with Hydra's `.hydra/overrides.yaml` and, once
the job ends, our `metrics.json`). The summary has one row per job: its overrides, best val loss,
test loss, epochs, samples/s, status (completed, pruned by an Optuna search, interrupted by a
signal with where it stopped, failed with its error, or unfinished) and folder, sorted by best val
loss; the best job's overrides are given as the command that trains it again. Val losses of
different variants or losses measure different objectives (nats of an ELBO, a penalised MSE ...),
and those of different noise levels or corruptions different tasks, so a sweep over them ranks the
jobs within each and picks no best. Jobs that differ only in
`seed` are also grouped as mean ± std; a plot
shows the test loss against the swept parameters. Jobs trained with evaluate=true add the headline
figures of their evaluation (metrics.json's "evaluation": test MSE, denoising PSNR, probe
accuracies, AUROC, ELBO ...) as columns, left empty for the jobs without them. It is written as
`summary.csv`, `summary.md` and `summary.png` in the sweep folder, by `SweepSummary` when a
multirun ends, or by this command for a sweep that is still running or was stopped.
"""

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path

from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from autoencoder.runs.record import RunRecord, Status
from autoencoder.utils.errors import UserError, stop_point
from autoencoder.utils.files import write_atomic
from autoencoder.utils.tables import markdown_table, mean_std

MONITOR = "best_val_loss"
COLUMNS = ("job", "overrides", "best_val_loss", "test_loss", "epochs", "samples_per_s", "status", "error", "folder")
RANKED_WITHIN = (
    "The jobs' val losses measure different tasks (variant and its settings, loss, noise level, corruption): "
    "they are ranked within each, and no best job is picked."
)


def read_job(folder: Path) -> dict:
    """One job's row, from its run record (unfinished: none yet; failed: one that cannot be read)."""
    overrides = [str(o) for o in OmegaConf.load(folder / ".hydra" / "overrides.yaml")]
    row = dict.fromkeys(COLUMNS) | {"job": folder.name, "overrides": overrides, "folder": str(folder), "status": Status.UNFINISHED, "evaluation": {}}
    record = RunRecord.read(folder)
    if record is None:
        return row
    return row | {
        "best_val_loss": record.best_val_loss,
        "test_loss": record.test_loss,
        "epochs": record.epochs,
        "samples_per_s": record.train_samples_per_s,
        "status": record.status,
        "error": record.error or _interruption(record),
        "evaluation": record.evaluation or {},
    }


def _interruption(record: RunRecord) -> str | None:
    """Where an interrupted job stopped, in its error column: `SIGTERM in epoch 2 after batch 40`."""
    if record.status is not Status.INTERRUPTED:
        return None
    return f"{record.signal} {stop_point(record.epoch, record.batch)}"


TASK_KEYS = ("variant", "loss", "noise", "corruption")  # and their settings (variant.beta, corruption.*)


def objective(row: dict) -> tuple[tuple[str, float | str], ...]:
    """The overrides that change what val loss measures, with their values: the variant and its
    settings, the loss, and the task itself, the noise level and the corruption (a denoiser's val
    loss at noise 0.3 is higher than a plain autoencoder's at 0 because its task is harder)."""
    split = (_split(o) for o in row["overrides"])
    return tuple(sorted((key, _number(value)) for key, value in split if key.split(".")[0] in TASK_KEYS))


def one_objective(rows: list[dict]) -> bool:
    """Whether every job's val loss measures the same thing, so that they compare."""
    return len({objective(r) for r in rows}) == 1


def job_folders(sweep: Path) -> list[Path]:
    """The folders of a sweep's jobs (each has .hydra/overrides.yaml), none when no job started."""
    return [folder for folder in sweep.iterdir() if (folder / ".hydra" / "overrides.yaml").is_file()]


def read_sweep(sweep: Path) -> list[dict]:
    """Every job folder of a sweep, best first, failed and unfinished jobs last; with several
    objectives, ranked so within each (the objectives in the order of their first jobs)."""
    if not sweep.is_dir():
        raise UserError(f"sweep folder {sweep} does not exist; give the folder a multirun wrote (outputs/multirun/<day>/<time>)")
    rows = [read_job(folder) for folder in job_folders(sweep)]
    if not rows:
        raise UserError(f"{sweep} holds no job folders (<job>/.hydra/overrides.yaml); give the folder a multirun wrote")
    first: dict[tuple, float] = defaultdict(lambda: math.inf)  # an objective's lowest job number
    for row in rows:
        first[objective(row)] = min(first[objective(row)], _job_number(row["job"]))
    return sorted(
        rows,
        key=lambda r: (first[objective(r)], r["status"] is not Status.COMPLETED, r[MONITOR] is None, r[MONITOR] or 0, _job_number(r["job"])),
    )


def evaluation_figures(rows: list[dict]) -> list[str]:
    """The names of the evaluation figures any job has, in the order the jobs give them."""
    return list(dict.fromkeys(name for row in rows for name in row["evaluation"]))


def _figure_format(name: str) -> str:
    return ".5f" if name == "test_mse" else ".4f" if name.endswith("accuracy") else ".2f"


def _job_number(name: str) -> float:
    return int(name) if name.isdigit() else math.inf


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def best_job(rows: list[dict]) -> dict | None:
    """The completed job with the lowest best val loss (rows as read_sweep sorts them); None when
    the jobs' val losses measure different objectives."""
    if not one_objective(rows):
        return None
    return rows[0] if rows and rows[0]["status"] is Status.COMPLETED and rows[0][MONITOR] is not None else None


def reproduce(row: dict) -> str:
    """The command that trains a job of the sweep again, as a single run: its overrides less the
    ones that configure the sweep (hparams_search, hydra.*)."""
    run = [o for o in row["overrides"] if not _split(o)[0].startswith(("hparams_search", "hydra.", "hydra/"))]
    return " ".join(["python -m autoencoder.train", *run])


def seed_groups(rows: list[dict]) -> list[dict]:
    """Mean ± std of the completed jobs that differ only in `seed` (groups of two or more)."""
    groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] is Status.COMPLETED and row[MONITOR] is not None:
            groups[tuple(o for o in row["overrides"] if _split(o)[0] != "seed")].append(row)
    out = []
    for overrides, members in groups.items():
        if len(members) < 2:
            continue
        out.append({"overrides": list(overrides), "jobs": len(members)} | {key: mean_std(m[key] for m in members) for key in (MONITOR, "test_loss")})
    return sorted(out, key=lambda g: g[MONITOR][0])


def _fmt(value: object, spec: str = ".5f") -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return f"{value[0]:{spec}} ± {value[1]:{spec}}"
    return format(value, spec) if isinstance(value, float) else str(value)


def _shown(overrides: list[str], common: set[str]) -> str:
    return f"`{' '.join(o for o in overrides if o not in common) or '(defaults)'}`"


def _best_lines(best: dict) -> list[str]:
    return [f"Best: job {best['job']} ({best['folder']}), best val loss {best[MONITOR]:.5f}. Train it again with:", "", f"    {reproduce(best)}", ""]


def _status(row: dict) -> str:
    if row["status"] in (Status.FAILED, Status.INTERRUPTED) and row["error"]:
        return f"{row['status']}: {row['error']}"
    return f"pruned after epoch {row['epochs']}" if row["status"] is Status.PRUNED else str(row["status"])


def to_markdown(sweep: Path, rows: list[dict], groups: list[dict]) -> str:
    """The tables; overrides shared by every job are listed once above them."""
    common = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
    counts = ", ".join(f"{sum(r['status'] is status for r in rows)} {status}" for status in Status)
    best, figures = best_job(rows), evaluation_figures(rows)
    lines = [
        f"# Sweep {sweep}",
        "",
        f"{len(rows)} jobs: {counts}. Sorted by best val loss, completed jobs first.",
        "",
        *([] if one_objective(rows) else [RANKED_WITHIN, ""]),
        *([f"Every job: `{' '.join(o for o in rows[0]['overrides'] if o in common)}`", ""] if common else []),
        *(_best_lines(best) if best else []),
    ]
    jobs = (
        [rank, r["job"], _shown(r["overrides"], common), _fmt(r[MONITOR]), _fmt(r["test_loss"]), _fmt(r["epochs"]), _fmt(r["samples_per_s"], ".0f"),
         *(_fmt(r["evaluation"].get(name), _figure_format(name)) for name in figures), _status(r), Path(r["folder"]).name]
        for rank, r in enumerate(rows, 1)
    )  # fmt: skip
    head = ["#", "job", "overrides", "best val loss", "test loss", "epochs", "samples/s", *(name.replace("_", " ") for name in figures), "status", "folder"]
    text = "\n".join(lines) + "\n" + markdown_table(head, jobs)
    if groups:
        seeds = ([_shown(g["overrides"], common), g["jobs"], _fmt(g[MONITOR]), _fmt(g["test_loss"])] for g in groups)
        text += "\n## Over seeds (mean ± std)\n\n" + markdown_table(["overrides", "jobs", "best val loss", "test loss"], seeds)
    return text


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    at = COLUMNS.index("status")  # the evaluation figures after the training ones
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS[:at], *evaluation_figures(rows), *COLUMNS[at:]])
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in COLUMNS} | row["evaluation"] | {"overrides": " ".join(row["overrides"])})
    return buffer.getvalue()


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def plot(rows: list[dict], path: Path) -> bool:
    """Test loss (mean ± std over seeds) against the first swept parameter, one line per setting
    of the others; False when nothing was swept or no job has finished."""
    done = [r for r in rows if r["status"] is Status.COMPLETED and r["test_loss"] is not None]
    settings = [dict(_split(o) for o in r["overrides"] if _split(o)[0] != "seed") for r in done]
    keys = dict.fromkeys(k for s in settings for k in s)  # in command-line order
    swept = [k for k in keys if len({s.get(k) for s in settings}) > 1]
    if not done or not swept:
        return False
    x_key, line_keys = swept[0], swept[1:]
    lines: dict[str, dict[object, list[float]]] = defaultdict(lambda: defaultdict(list))
    for setting, row in zip(settings, done, strict=True):
        label = " ".join(f"{k}={setting.get(k, '-')}" for k in line_keys) or "test loss"
        lines[label][_number(setting.get(x_key, "-"))].append(row["test_loss"])
    categorical = any(isinstance(x, str) for points in lines.values() for x in points)
    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    for label, points in sorted(lines.items()):
        xs = sorted(points, key=str) if categorical else sorted(points)
        means = [statistics.mean(points[x]) for x in xs]
        stds = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
        ax.errorbar([str(x) for x in xs] if categorical else xs, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set(xlabel=x_key, ylabel="test loss", title="test loss over the sweep")
    if (
        not categorical
        and all(x > 0 for points in lines.values() for x in points)
        and max(max(p) for p in lines.values()) / min(min(p) for p in lines.values()) >= 8
    ):
        ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return True


def summarize(sweep: Path) -> list[dict]:
    """Write summary.csv, summary.md and summary.png into the sweep folder; returns the rows."""
    sweep = Path(sweep)
    rows = read_sweep(sweep)
    write_atomic(sweep / "summary.csv", to_csv(rows))
    write_atomic(sweep / "summary.md", to_markdown(sweep, rows, seed_groups(rows)))
    plot(rows, sweep / "summary.png")
    return rows


class SweepSummary(Callback):
    """Hydra callback (conf/config.yaml): summarizes the sweep folder when a multirun ends. A
    search worker that joined a shared study after other workers had claimed every queued trial
    ran no job, and has nothing to summarize."""

    @override
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        if not sweep.is_dir() or not job_folders(sweep):
            print(f"sweep summary: none, no job ran in {sweep}")
            return
        rows = summarize(sweep)
        print(f"sweep summary: {sweep / 'summary.md'} ({len(rows)} jobs)")
        best = best_job(rows)
        if best:
            print(f"best: job {best['job']} ({best['folder']}), best val loss {best[MONITOR]:.5f}; train it again with:\n  {reproduce(best)}")
