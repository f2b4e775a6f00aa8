"""One-class anomaly detection by reconstruction error, the protocol of Ruff et al. 2018 (Deep SVDD,
ICML, Table 1): for each digit c, train only on training images of c, score all 10,000 test images
by how badly they are reconstructed, and report the AUROC with the nine other digits as anomalies.
Two reconstruction-error scores are reported side by side: the per-image MSE, and the relative
error ||x - x'||^2 / ||x||^2, which does not reward digits for having little ink (`python -m autoencoder.anomaly`).

Each (digit, seed) run is an ordinary training run in `<folder>/digit<c>/seed<s>/` with its own
`anomaly.json`; a run that already has one is not trained again, so an interrupted table is finished
by starting the command again with `hydra.run.dir=<its folder>`. The folder gets `anomaly.json` and
`anomaly.md`: per-digit AUROC (mean ± std over seeds) beside the published DCAE and Deep SVDD.
"""

import json
import logging
import statistics
from pathlib import Path

from omegaconf import DictConfig, open_dict

from autoencoder.config.validation import validate
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.metrics import auroc, per_image_mse, relative_error
from autoencoder.training.checkpoints import datamodule_for, load_trained
from autoencoder.training.run import train
from autoencoder.utils.files import write_atomic
from autoencoder.utils.tables import format_mean_std, markdown_table

log = logging.getLogger(__name__)

SCORES = {"mse": per_image_mse, "relative": relative_error}
# Ruff et al. 2018, Table 1, MNIST, AUROC in % for normal digits 0..9.
PUBLISHED = {
    "DCAE (Ruff et al.)": [97.6, 98.3, 85.4, 86.7, 86.5, 78.2, 94.6, 92.3, 86.5, 90.4],
    "OC Deep SVDD (Ruff et al.)": [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5],
}


def score_run(run_dir: Path, best_checkpoint: str, digit: int) -> dict:
    """AUROC of a one-class model on the full test set; anomalies are the other nine digits."""
    cfg, module = load_trained(best_checkpoint)
    images, labels = datamodule_for(cfg).split("test")
    recon = in_batches(module, images)
    scores = {name: score(recon, images) for name, score in SCORES.items()}
    result = {
        "digit": digit,
        "seed": cfg.seed,
        **{f"auroc_{name}": 100 * auroc(s, labels != digit) for name, s in scores.items()},
        "checkpoint": best_checkpoint,
    }
    write_atomic(run_dir / "anomaly.json", json.dumps(result, indent=2) + "\n")
    return result


def one_class_run(cfg: DictConfig, out: Path, digit: int, seed: int) -> dict:
    """Train on digit `digit` with `seed` (unless done before) and score it."""
    run_dir = out / f"digit{digit}" / f"seed{seed}"
    if (run_dir / "anomaly.json").is_file():
        log.info("digit %d seed %d: done before, reading %s", digit, seed, run_dir / "anomaly.json")
        return json.loads((run_dir / "anomaly.json").read_text())
    run_cfg = cfg.copy()
    with open_dict(run_cfg):
        run_cfg.output_dir, run_cfg.seed, run_cfg.data.classes = str(run_dir), seed, [digit]
    metrics = train(run_cfg)
    result = score_run(run_dir, metrics["best_checkpoint"], digit)
    log.info("digit %d seed %d: AUROC %.2f (MSE), %.2f (relative error)", digit, seed, result["auroc_mse"], result["auroc_relative"])
    return result


def table(results: list[dict], digits: list[int], seeds: list[int]) -> tuple[dict, str]:
    """Per-digit and mean AUROC for each score, as JSON and as a markdown table beside the
    published numbers. The mean is taken over digits for each seed, then mean ± std over seeds."""
    summary: dict = {"digits": digits, "seeds": seeds}
    columns = []
    for name in SCORES:
        by_digit = {d: [r[f"auroc_{name}"] for r in results if r["digit"] == d] for d in digits}
        seed_means = [statistics.mean(r[f"auroc_{name}"] for r in results if r["seed"] == s) for s in seeds]
        summary[name] = {
            "auroc_per_digit": by_digit,
            "mean_auroc": statistics.mean(seed_means),
            "mean_auroc_std_over_seeds": statistics.stdev(seed_means) if len(seeds) > 1 else None,
        }
        columns.append([format_mean_std(by_digit[d], ".1f") for d in digits] + [f"**{format_mean_std(seed_means, '.1f')}**"])
    summary["runs"] = results
    published = [[f"{v[d]:.1f}" for d in digits] + [f"{statistics.mean(v[d] for d in digits):.2f}"] for v in PUBLISHED.values()]
    header = ["digit", "ours, MSE score", "ours, relative-error score", *PUBLISHED]
    rows = ([label, *(c[i] for c in columns), *(p[i] for p in published)] for i, label in enumerate([*map(str, digits), "mean"]))
    return summary, markdown_table(header, rows)


def anomaly(cfg: DictConfig) -> dict:
    """Run every (digit, seed) pair, then write anomaly.json and anomaly.md; returns the summary."""
    validate(cfg)
    digits, seeds = list(cfg.digits), list(cfg.seeds)
    out = Path(cfg.output_dir)
    results = [one_class_run(cfg, out, d, s) for d in digits for s in seeds]
    summary, markdown = table(results, digits, seeds)
    write_atomic(out / "anomaly.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(out / "anomaly.md", markdown)
    log.info("one-class AUROC (%%), %d digits x %d seeds:\n%s", len(digits), len(seeds), markdown)
    return summary
