"""One-class anomaly detection by reconstruction error, the protocol of Ruff et al. 2018 (Deep SVDD,
ICML, Table 1): for each class c, train only on training images of c, score images by how badly
they are reconstructed, and report the AUROC with the other classes as anomalies
(`python -m autoencoder.anomaly`, any dataset: `data=fashion_mnist`). Five scores side by side
(autoencoder/evaluation/scores.py): the per-image MSE; the relative error ||x - x'||^2 / ||x||^2,
which does not reward images with little ink; the mean distance of an image's code to its k
nearest codes of the training images (`knn_k`), which asks whether the encoder has seen anything
like it; the same distance between raw pixels, the model-free baseline; and their combination,
each standardised on the normal training images. A VAE (variant=vae) adds its negative ELBO, a
bound on -log p(x). A model trained to undo a transformation corruption (`corruption=rotation`,
flip, translation, grayscale or a chain of them) adds its restoration errors over the whole set
of transformations, mean and worst, and with `module.transform_head_weight` > 0 its head's
negative log-likelihood of the right transformation; these join the combined score, and each run
draws `restorations.png`: a normal and an anomalous validation image, transformed and restored.

Each model is scored on the validation split (held out of the training set, every class in it)
and, unless `test=false`, on the test set. Settings are chosen on the validation AUROC alone: run
the candidates with `test=false`, keep the best, then run it with the test set for the figure; the
score with the higher validation AUROC is the one the table names as chosen.

Each (class, seed) run is an ordinary training run in `<folder>/class<c>/seed<s>/` with its own
`anomaly.json`; a run scored before is not trained again (only scored on what it lacks), so an
interrupted table is finished by starting the command again with `hydra.run.dir=<its folder>`.
The folder gets `anomaly.json` and `anomaly.md`: per-class AUROC (mean ± std over seeds) beside
published figures for the dataset where there are some.
"""

import json
import logging
import statistics
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from autoencoder.config.validation import CLASSES, NULL, RULES, anything_of, boolean, integer, integers, strings, validate
from autoencoder.evaluation.metrics import auroc
from autoencoder.evaluation.scores import COMBINED, EVERY_VARIANT, RESTORATION, SCORES, restorations, scorer
from autoencoder.models.corruption import Transformations
from autoencoder.models.module import LitAutoencoder
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from autoencoder.runs.record import RunRecord, Status
from autoencoder.utils.figures import restoration_grid
from autoencoder.utils.files import write_atomic, write_json
from autoencoder.utils.progress import Counted, Reporter
from autoencoder.utils.tables import format_mean_std, markdown_table
from autoencoder.workflows.jobs import train_and_evaluate

log = logging.getLogger(__name__)

# conf/anomaly.yaml's keys: the training config's and the table's own.
# conf/anomaly.yaml's own keys; the rest is the training config each one-class run gets.
OWN_RULES = {
    "classes": CLASSES,
    "test": boolean(),
    "knn_k": integer(1),
    "combine": anything_of(NULL, strings(options=(*COMBINED, *RESTORATION))),
    "seeds": integers(0, 2**32 - 1, distinct=True),
}
ANOMALY_RULES = {**RULES, **OWN_RULES}

# AUROC in % for normal classes 0..9, by data module.
PUBLISHED = {
    "MNIST": {  # Ruff et al. 2018, Table 1
        "DCAE (Ruff et al.)": [97.6, 98.3, 85.4, 86.7, 86.5, 78.2, 94.6, 92.3, 86.5, 90.4],
        "OC Deep SVDD (Ruff et al.)": [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5],
    },
    "FashionMNIST": {  # as tabulated by AGAD (Table 1, p. 6): GeoTrans from Cheng et al. 2020, ARNet from Ye et al. 2022
        "GeoTrans (Golan & El-Yaniv)": [99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2],
        "ARNet (Ye et al.)": [92.7, 99.3, 89.1, 93.6, 90.8, 93.1, 85.0, 98.4, 97.8, 98.4],
    },
}


def class_label(names: tuple[str, ...], label: int) -> str:
    """'7' for MNIST, whose class names are its labels; '7 Sneaker' otherwise."""
    name = names[label] if label < len(names) else str(label)
    return name if name == str(label) else f"{label} {name}"


def score_run(run_dir: Path, best_checkpoint: str, label: int, splits: tuple[str, ...], k: int, combine: list[str] | None = None) -> dict:
    """AUROC of a one-class model on whole splits (`val`, `test`); anomalies are the other classes.
    The latent k-NN score measures distances to the codes of the images the model trained on; the
    combined score sums the scores `combine` names (None: all the model has)."""
    cfg, module = load_trained(best_checkpoint)
    datamodule = datamodule_for(cfg)
    train_images, train_labels = datamodule.split("train")
    score = scorer(module, train_images[train_labels == label], k, combine)
    result = {"class": label, "seed": cfg.seed, "knn_k": k, "combine": combine}
    for split in splits:
        images, labels = datamodule.split(split)
        result |= {f"{split}_auroc_{name}": 100 * auroc(s, labels != label) for name, s in score(images).items()}
    if isinstance(module.corruption, Transformations):
        draw_restorations(module, *datamodule.split("val"), label, datamodule.dataset.class_names, run_dir / "restorations.png")
    result["checkpoint"] = best_checkpoint
    write_json(run_dir / "anomaly.json", result)
    return result


def draw_restorations(module: LitAutoencoder, images: Tensor, labels: Tensor, label: int, names: tuple[str, ...], path: Path) -> None:
    """The first validation image of the normal class and the first of another, each under every
    transformation of the model's set and restored (a model trained on a transformation corruption)."""
    examples = []
    for title, chosen in (("normal", labels == label), ("anomaly", labels != label)):
        image, image_label = images[chosen][0], int(labels[chosen][0])
        examples.append((f"{title}: {class_label(names, image_label)}", image, *restorations(module, image)))
    restoration_grid(examples, module.corruption.names).savefig(path, dpi=100)


def one_class_run(cfg: DictConfig, out: Path, label: int, seed: int, splits: tuple[str, ...]) -> dict:
    """Train on class `label` with `seed` (unless done before) and score it on `splits`."""
    run_dir = out / f"class{label}" / f"seed{seed}"
    wanted = [f"{split}_auroc_{name}" for split in splits for name in EVERY_VARIANT]
    done = json.loads((run_dir / "anomaly.json").read_text()) if (run_dir / "anomaly.json").is_file() else {}
    combine = OmegaConf.to_container(cfg.combine) if cfg.combine is not None else None
    if all(key in done for key in wanted) and (done.get("knn_k"), done.get("combine")) == (cfg.knn_k, combine):
        log.info("class %d seed %d: done before, reading %s", label, seed, run_dir / "anomaly.json")
        return done
    if (trained := RunRecord.read(run_dir)) and trained.status is Status.COMPLETED:  # trained before, scored on fewer splits
        best = trained.best_checkpoint
    else:
        run_cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key not in OWN_RULES])
        with open_dict(run_cfg):
            run_cfg.output_dir, run_cfg.seed, run_cfg.data.classes = str(run_dir), seed, [label]
        best = train_and_evaluate(run_cfg)["best_checkpoint"]
    result = score_run(run_dir, best, label, splits, cfg.knn_k, combine)
    log.info("class %d seed %d: %s", label, seed, ", ".join(f"{key} {result[key]:.2f}" for key in wanted))
    return result


def table(results: list[dict], labels: list[int], seeds: list[int], names: tuple[str, ...], published: dict) -> tuple[dict, str]:
    """Per-class and mean AUROC for each split and score, as JSON and as a markdown table beside the
    published figures. The mean is taken over classes for each seed, then mean ± std over seeds.
    The chosen score is the one with the higher mean validation AUROC."""
    splits = [split for split in ("test", "val") if f"{split}_auroc_mse" in results[0]]
    scored = [name for name in SCORES if all(f"val_auroc_{name}" in r for r in results)]
    summary: dict = {"classes": labels, "class_names": [class_label(names, c) for c in labels], "seeds": seeds}
    header, columns = ["class"], []
    for split in splits:
        summary[split] = {}
        for name in scored:
            key = f"{split}_auroc_{name}"
            by_class = {c: [r[key] for r in results if r["class"] == c] for c in labels}
            seed_means = [statistics.mean(r[key] for r in results if r["seed"] == s) for s in seeds]
            summary[split][name] = {
                "auroc_per_class": by_class,
                "mean_auroc": statistics.mean(seed_means),
                "mean_auroc_std_over_seeds": statistics.stdev(seed_means) if len(seeds) > 1 else None,
            }
            header.append(f"{split}, {SCORES[name]} score")
            columns.append([format_mean_std(by_class[c], ".1f") for c in labels] + [f"**{format_mean_std(seed_means, '.1f')}**"])
    summary["chosen_score"] = max(scored, key=lambda name: summary["val"][name]["mean_auroc"])
    summary["runs"] = results
    header += list(published)
    columns += [[f"{v[c]:.1f}" for c in labels] + [f"{statistics.mean(v[c] for c in labels):.2f}"] for v in published.values()]
    rows = ([label, *(column[i] for column in columns)] for i, label in enumerate([*summary["class_names"], "mean"]))
    return summary, markdown_table(header, rows)


def anomaly(cfg: DictConfig) -> dict:
    """Run every (class, seed) pair, then write anomaly.json and anomaly.md; returns the summary.
    Where stdout is not a terminal, `progress:` lines count the runs done (`cfg.progress`)."""
    validate(cfg, ANOMALY_RULES)
    datamodule = datamodule_for(cfg)
    dataset = datamodule.dataset
    labels = sorted(dataset.labels_of(cfg.classes, key="classes")) if cfg.classes is not None else list(range(len(dataset.class_names)))
    seeds, splits = list(cfg.seeds), ("val", "test") if cfg.test else ("val",)
    out = Path(cfg.output_dir)
    runs = Counted(Reporter(**cfg.progress), "anomaly", len(labels) * len(seeds), "runs")
    results = []
    for c in labels:
        for s in seeds:
            results.append(one_class_run(cfg, out, c, s, splits))
            runs.advance(note=f"class {c} seed {s}")
    summary, markdown = table(results, labels, seeds, dataset.class_names, PUBLISHED.get(dataset.name, {}))
    summary["data"] = dataset.name
    write_json(out / "anomaly.json", summary)
    write_atomic(out / "anomaly.md", markdown)
    chosen = summary["chosen_score"]
    log.info(
        "one-class AUROC (%%), %d classes x %d seeds (score chosen on validation: %s, mean %.2f):\n%s",
        len(labels),
        len(seeds),
        chosen,
        summary["val"][chosen]["mean_auroc"],
        markdown,
    )
    return summary
