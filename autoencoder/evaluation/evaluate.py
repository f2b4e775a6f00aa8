"""Evaluate a trained checkpoint on the test set, one measure per use the lecture names
(`python -m autoencoder.evaluate ckpt_path=...`).

- reconstruction: MSE, BCE, PSNR and SSIM of clean test images;
- denoising: PSNR against the clean image of the corrupted input, of a classical filter (Gaussian
  blur or median, its width picked on validation images) and of the autoencoder's output, for each
  corruption and noise level;
- latent space: a scatter coloured by digit (PCA above 2 dimensions, t-SNE on request), the decoded
  manifold for a 2-D latent, and TensorBoard's embedding projector with digit sprites;
- features: a linear probe and k-NN on the frozen codes, beside the same probes on raw pixels and on
  PCA with as many components as the latent;
- likelihood, for a VAE: the test ELBO and the importance-weighted estimate of -log p(x) in nats
  (autoencoder.evaluation.likelihood);
- anomaly detection, for a model trained on some classes only (its `data.classes`): the test AUROC
  with the other classes as anomalies, for each score of the anomaly command.

Everything goes to the command's own folder: evaluation.json, evaluation.md, PNG figures and
TensorBoard events. A training run with evaluate=true runs it on its best checkpoint and keeps the
`headline` figures in its metrics.json.
"""

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from scipy import ndimage
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image

from autoencoder import CONFIG_DIR
from autoencoder.config.validation import validate
from autoencoder.data.images import class_names
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.likelihood import likelihood
from autoencoder.evaluation.metrics import auroc, knn_accuracy, linear_probe_accuracy, per_image_mse, psnr, ssim
from autoencoder.evaluation.scores import scorer
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from autoencoder.utils.figures import latent_scatter, psnr_plot
from autoencoder.utils.files import write_atomic
from autoencoder.utils.progress import Counted, Reporter
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)

# Classical denoisers tried on validation images; the best one per corruption and noise is used.
FILTERS = {
    **{f"gaussian blur sigma={s}": (ndimage.gaussian_filter, {"sigma": (0, 0, s, s)}) for s in (0.5, 0.75, 1.0, 1.5, 2.0)},
    **{f"median {k}x{k}": (ndimage.median_filter, {"size": (1, 1, k, k)}) for k in (3, 5)},
}


def classical_filter(name: str, images: torch.Tensor) -> torch.Tensor:
    function, kwargs = FILTERS[name]
    return torch.from_numpy(function(images.numpy(), **kwargs))


def corruption(name: str, noise: float) -> torch.nn.Module:
    """The corruption `conf/corruption/<name>.yaml` describes, at the given noise."""
    return instantiate(OmegaConf.load(CONFIG_DIR / "corruption" / f"{name}.yaml"), noise=noise)


def reconstruction(recon: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict:
    """Test MSE, BCE, PSNR and SSIM, and the MSE of each class (by name): which classes the
    network reconstructs worst."""
    errors = per_image_mse(recon, clean)
    return {
        "mse": float(F.mse_loss(recon, clean)),
        "bce": float(F.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), clean)),
        "psnr_db": float(psnr(recon, clean).mean()),
        "ssim": ssim(recon, clean),
        "mse_per_class": {name: float(errors[labels == c].mean()) for c, name in enumerate(names) if (labels == c).any()},
    }


def denoising(module: torch.nn.Module, val: torch.Tensor, test: torch.Tensor, cfg: DictConfig, steps: Counted | None = None) -> list[dict]:
    """One row per corruption and noise level: mean test PSNR of noisy input, filter and model;
    each row is one of the evaluation's `steps`."""
    rows = []
    val_clean, test_clean = val[: cfg.denoising.tuning_images], test
    for name in cfg.denoising.corruptions:
        for noise in cfg.denoising.noise:
            corrupt = corruption(name, noise)
            generator = torch.Generator().manual_seed(cfg.seed)
            val_noisy, test_noisy = corrupt(val_clean, generator), corrupt(test_clean, generator)
            best = max(FILTERS, key=lambda f: float(psnr(classical_filter(f, val_noisy), val_clean).mean()))
            rows.append(
                {
                    "corruption": name,
                    "noise": noise,
                    "psnr_noisy_db": float(psnr(test_noisy, test_clean).mean()),
                    "psnr_filter_db": float(psnr(classical_filter(best, test_noisy), test_clean).mean()),
                    "filter": best,
                    "psnr_autoencoder_db": float(psnr(in_batches(module, test_noisy, cfg.batch_size), test_clean).mean()),
                }
            )
            log.info(
                "denoising %s %.1f: noisy %.2f dB, %s %.2f dB, autoencoder %.2f dB",
                name,
                noise,
                rows[-1]["psnr_noisy_db"],
                best,
                rows[-1]["psnr_filter_db"],
                rows[-1]["psnr_autoencoder_db"],
            )
            if steps:
                steps.advance(note=f"denoising {name} {noise:g}")
    return rows


def latent_figures(codes: torch.Tensor, labels: torch.Tensor, names: list[str], cfg: DictConfig) -> dict[str, Figure]:
    """Scatter of the codes (PCA when wider than 2) and optional t-SNE, classes named by `names`."""
    figures = {}
    if codes.shape[1] == 2:
        figures["latent"] = latent_scatter(codes, labels, "test latent space", names)
    else:
        pca = PCA(2, random_state=cfg.seed).fit(codes.numpy())
        figures["latent"] = latent_scatter(
            torch.from_numpy(pca.transform(codes.numpy())), labels, f"test latent space ({codes.shape[1]} dims), PCA", names, ("PC 1", "PC 2")
        )
    if cfg.latent.tsne:
        n = min(cfg.latent.tsne_points, len(codes))
        embedded = TSNE(2, init="pca", random_state=cfg.seed).fit_transform(codes[:n].numpy())
        figures["latent_tsne"] = latent_scatter(
            torch.from_numpy(embedded), labels[:n], f"test latent space ({codes.shape[1]} dims), t-SNE of {n} codes", names, ("t-SNE 1", "t-SNE 2")
        )
    return figures


def manifold(module: torch.nn.Module, codes: torch.Tensor, steps: int) -> torch.Tensor:
    """Images decoded from a steps x steps grid spanning the 1st-99th percentile of 2-D codes."""
    low, high = torch.quantile(codes, 0.01, dim=0), torch.quantile(codes, 0.99, dim=0)
    ys, xs = torch.linspace(high[1], low[1], steps), torch.linspace(low[0], high[0], steps)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).flip(-1).reshape(-1, 2)
    return make_grid(in_batches(module.decode, grid), nrow=steps, padding=0)


# The inputs `features` probes: codes, pixels and PCA of the pixels.
FEATURE_INPUTS = 3


def features(module: torch.nn.Module, train: tuple, test: tuple, test_codes: torch.Tensor, cfg: DictConfig, steps: Counted | None = None) -> dict:
    """Linear-probe and k-NN test accuracy on codes, raw pixels and PCA of the pixels (each of the
    FEATURE_INPUTS one of the evaluation's `steps`)."""
    (train_x, train_y), (test_x, test_y) = train, test
    if cfg.probe.train_size is not None:
        train_x, train_y = train_x[: cfg.probe.train_size], train_y[: cfg.probe.train_size]
    pixels = train_x.flatten(1).numpy(), test_x.flatten(1).numpy()
    codes = in_batches(module.encode, train_x, cfg.batch_size).numpy(), test_codes.numpy()
    pca = PCA(codes[0].shape[1], random_state=cfg.seed).fit(pixels[0])
    inputs = {"latent": codes, "pixels": pixels, f"pca{codes[0].shape[1]}": (pca.transform(pixels[0]), pca.transform(pixels[1]))}
    labels = train_y.numpy(), test_y.numpy()
    results = {}
    for name, (a, b) in inputs.items():
        results[name] = {
            "dims": a.shape[1],
            "linear_probe_accuracy": linear_probe_accuracy(a, labels[0], b, labels[1]),
            "knn_accuracy": knn_accuracy(a, labels[0], b, labels[1], cfg.probe.knn_k),
        }
        log.info(
            "features %s (%d dims): linear probe %.4f, %d-NN %.4f",
            name,
            a.shape[1],
            results[name]["linear_probe_accuracy"],
            cfg.probe.knn_k,
            results[name]["knn_accuracy"],
        )
        if steps:
            steps.advance(note=f"probes on {name}")
    return {"train_images": len(train_x), "knn_k": cfg.probe.knn_k, **results}


def anomaly_detection(module: torch.nn.Module, normal: list[int], train: tuple, test: tuple, names: list[str], cfg: DictConfig) -> dict:
    """Test AUROC (%) of a model trained on the classes `normal` only, the other classes being the
    anomalies, for each score of the anomaly command; its k-NN scores measure distances to those
    classes' training images and their codes, as that command's do."""
    (train_x, train_y), (test_x, test_y) = train, test
    labels = torch.tensor(normal)
    is_anomaly = ~torch.isin(test_y, labels)
    by_score = scorer(module, train_x[torch.isin(train_y, labels)], cfg.anomaly.knn_k)(test_x)
    return {
        "normal_classes": [names[c] for c in normal],
        "knn_k": cfg.anomaly.knn_k,
        "test_auroc": {name: 100 * auroc(score, is_anomaly) for name, score in by_score.items()},
    }


def headline(result: dict) -> dict[str, float]:
    """The figures of an evaluation that a training run with evaluate=true keeps in metrics.json,
    under flat names so that a sweep's summary can make them columns: test MSE, the autoencoder's
    PSNR at gaussian noise 0.3 (when the denoising table has that row), linear-probe and k-NN
    accuracy on the codes, the one-class AUROC (%) of each anomaly score, a VAE's -ELBO and -log p(x)."""
    figures = {"test_mse": result["reconstruction"]["mse"]}
    for row in result["denoising"]:
        if (row["corruption"], row["noise"]) == ("gaussian", 0.3):  # the noise of the README's headline command
            figures["denoising_psnr_gaussian_0.3"] = row["psnr_autoencoder_db"]
    figures |= {key: result["features"]["latent"][key] for key in ("linear_probe_accuracy", "knn_accuracy")}
    figures |= {f"anomaly_auroc_{name}": value for name, value in result.get("anomaly", {}).get("test_auroc", {}).items()}
    figures |= {key: result["likelihood"][key] for key in ("negative_elbo_nats", "nll_nats") if "likelihood" in result}
    return figures


def markdown(result: dict) -> str:
    """evaluation.json's tables, readable."""
    rec, feats = result["reconstruction"], result["features"]
    per_class = rec["mse_per_class"]
    tables = [
        markdown_table(
            ["test MSE", "test BCE", "test PSNR (dB)", "test SSIM"], [[f"{rec['mse']:.5f}", f"{rec['bce']:.4f}", f"{rec['psnr_db']:.2f}", f"{rec['ssim']:.4f}"]]
        ),
        markdown_table(
            ["corruption", "noise", "noisy input PSNR", "classical filter PSNR", "filter", "autoencoder PSNR"],
            (
                [r["corruption"], r["noise"], f"{r['psnr_noisy_db']:.2f}", f"{r['psnr_filter_db']:.2f}", r["filter"], f"{r['psnr_autoencoder_db']:.2f}"]
                for r in result["denoising"]
            ),
        ),
        markdown_table(
            [f"features ({feats['train_images']} train images)", "dims", "linear probe", f"{feats['knn_k']}-NN"],
            ([k, v["dims"], f"{v['linear_probe_accuracy']:.4f}", f"{v['knn_accuracy']:.4f}"] for k, v in feats.items() if isinstance(v, dict)),
        ),
        markdown_table(["class", *per_class], [["test MSE", *(f"{v:.5f}" for v in per_class.values())]]),
    ]
    if "likelihood" in result:
        lik = result["likelihood"]
        tables.append(
            markdown_table(
                ["test -ELBO (nats)", f"test -log p(x), k={lik['samples']} (nats)"], [[f"{lik['negative_elbo_nats']:.2f}", f"{lik['nll_nats']:.2f}"]]
            )
        )
    if "anomaly" in result:
        anomaly, aurocs = result["anomaly"], result["anomaly"]["test_auroc"]
        head = ["normal classes", *(f"test AUROC (%), {name} score" for name in aurocs)]
        tables.append(markdown_table(head, [[", ".join(anomaly["normal_classes"]), *(f"{v:.1f}" for v in aurocs.values())]]))
    return f"# Evaluation of {result['checkpoint']} on {result['data']}\n\n" + "\n".join(tables)


def evaluate(cfg: DictConfig, data_overrides: Mapping | None = None) -> dict:
    """Run every measure on the checkpoint; write evaluation.json/.md, figures and TensorBoard.
    `data_overrides` replace keys of the run's data config (e.g. its data_dir). Where stdout is
    not a terminal each measure (denoising row, probed input, ...) is a step of `progress:` lines,
    with the settings of `cfg.progress`."""
    validate(cfg)
    run_cfg, module = load_trained(cfg.ckpt_path)
    data = datamodule_for(run_cfg, data_overrides)
    test_x, test_y = data.split("test")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out / "tensorboard"))

    names = class_names(data, test_y)
    rows = len(cfg.denoising.corruptions) * len(cfg.denoising.noise)
    total = 1 + rows + FEATURE_INPUTS + module.variant.generative + (run_cfg.data.classes is not None) + 1  # the last: figures and TensorBoard
    steps = Counted(Reporter(**cfg.progress), "evaluate", total, "steps")
    result = {
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
        "data": data.dataset.name,
        "latent_dim": module.net.latent_dim,
        "trained_noise": run_cfg.noise,
    }
    codes = in_batches(module.encode, test_x, cfg.batch_size)
    result["reconstruction"] = reconstruction(in_batches(module.decode, codes, cfg.batch_size), test_x, test_y, names)
    r = result["reconstruction"]
    log.info("reconstruction: test MSE %.5f, BCE %.4f, PSNR %.2f dB, SSIM %.4f", r["mse"], r["bce"], r["psnr_db"], r["ssim"])
    steps.advance(note="reconstruction")
    result["denoising"] = denoising(module, data.split("val")[0], test_x, cfg, steps)
    train = data.split("train")  # (N, C, H, W) floats: made once, for the probes and the anomaly scores
    result["features"] = features(module, train, (test_x, test_y), codes, cfg, steps)
    if module.variant.generative:
        result["likelihood"] = likelihood(module, test_x, cfg.likelihood.samples, cfg.likelihood.decodes, cfg.seed, Reporter(**cfg.progress))
        nats = result["likelihood"]
        log.info("likelihood: -ELBO %.2f nats, -log p(x) %.2f nats (k=%d)", nats["negative_elbo_nats"], nats["nll_nats"], nats["samples"])
        steps.advance(note="likelihood")
    if run_cfg.data.classes is not None:
        result["anomaly"] = anomaly_detection(module, data.dataset.labels_of(run_cfg.data.classes), train, (test_x, test_y), names, cfg)
        scores = ", ".join(f"{name} {value:.2f}" for name, value in result["anomaly"]["test_auroc"].items())
        log.info("anomaly detection, test AUROC %% with %s as normal: %s", "/".join(result["anomaly"]["normal_classes"]), scores)
        steps.advance(note="anomaly detection")

    figures = {"denoising_psnr": psnr_plot(result["denoising"])}
    figures.update(latent_figures(codes, test_y, names, cfg))
    if codes.shape[1] == 2:
        grid = manifold(module, codes, cfg.latent.manifold_steps)
        save_image(grid, out / "manifold.png")
        writer.add_image("eval/manifold", grid)
    for name, figure in figures.items():
        figure.savefig(out / f"{name}.png", dpi=100)
        writer.add_figure(f"eval/{name}", figure, close=False)
    n = min(cfg.latent.projector_points, len(codes))
    writer.add_embedding(codes[:n], metadata=[names[c] for c in test_y[:n].tolist()], label_img=test_x[:n], tag="test_latent")
    for key, value in result["reconstruction"].items():
        for name, v in value.items() if isinstance(value, dict) else [(None, value)]:
            writer.add_scalar(f"eval/reconstruction/{key}" + (f"/{name}" if name else ""), v)
    for name, value in result.get("likelihood", {}).items():
        writer.add_scalar(f"eval/likelihood/{name}", value)
    for name, value in result.get("anomaly", {}).get("test_auroc", {}).items():
        writer.add_scalar(f"eval/anomaly_auroc/{name}", value)
    for name, accuracies in result["features"].items():
        if isinstance(accuracies, dict):
            writer.add_scalar(f"eval/linear_probe/{name}", accuracies["linear_probe_accuracy"])
            writer.add_scalar(f"eval/knn/{name}", accuracies["knn_accuracy"])
    tables = markdown(result)
    writer.add_text("eval/tables", tables)
    writer.close()
    steps.advance(note="figures and TensorBoard")

    write_atomic(out / "evaluation.json", json.dumps(result, indent=2) + "\n")
    write_atomic(out / "evaluation.md", tables)
    log.info("evaluation written to %s", out)
    return result
