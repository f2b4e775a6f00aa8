import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoder.evaluation.evaluate import evaluate
from autoencoder.evaluation.measures.denoising import FILTERS, classical_filter, corruption
from autoencoder.evaluation.metrics import psnr
from autoencoder.models.module import LitAutoencoder
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from tests.conftest import compose_entry, run_module

SMALL = [
    "denoising.noise=[0.1,0.4]",
    "denoising.tuning_images=20",
    "latent.projector_points=30",
    "latent.manifold_steps=5",
    "latent.tsne=true",
    "latent.tsne_points=40",
    "batch_size=16",
]


def test_evaluate_writes_every_measure(trained_checkpoint, fake_mnist, tmp_path):
    cfg = compose_entry("evaluate", tmp_path, f"ckpt_path={trained_checkpoint}", *SMALL)
    result = evaluate(cfg, {"data_dir": str(fake_mnist)})
    assert json.loads((tmp_path / "evaluation.json").read_text()) == result
    # The reconstruction figures are those of the checkpoint's own network on the test split.
    net = LitAutoencoder.load_from_checkpoint(trained_checkpoint, map_location="cpu", weights_only=True).eval().net
    test_x, test_y = datamodule_for(load_trained(trained_checkpoint)[0], {"data_dir": str(fake_mnist)}).split("test")
    with torch.no_grad():
        recon = net.decode(net.encode(test_x))
    rec = result["reconstruction"]
    assert rec["mse"] == pytest.approx(float((recon - test_x).square().mean()), rel=1e-5)
    assert rec["psnr_db"] == pytest.approx(float(psnr(recon, test_x).mean()), rel=1e-5)
    assert rec["bce"] == pytest.approx(float(torch.nn.functional.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), test_x)), rel=1e-5)
    assert rec["mse_per_class"]["3"] == pytest.approx(float((recon - test_x)[test_y == 3].square().mean()), rel=1e-5)
    assert list(rec["mse_per_class"]) == [str(c) for c in range(10)] and result["data"] == "MNIST"
    rows = result["denoising"]
    assert [(r["corruption"], r["noise"]) for r in rows] == [(c, n) for c in ("gaussian", "masking", "salt_pepper") for n in (0.1, 0.4)]
    assert all(r["filter"] in FILTERS for r in rows)
    for c in ("gaussian", "salt_pepper"):  # more noise, lower input PSNR
        low, high = (r for r in rows if r["corruption"] == c)
        assert low["psnr_noisy_db"] > high["psnr_noisy_db"]
    features = result["features"]
    assert features["train_images"] == 250 and set(features) >= {"latent", "pixels", "pca2"}
    assert features["latent"]["dims"] == 2 and features["pixels"]["dims"] == 784
    # The fake digits are bars at ten positions: raw pixels separate them.
    assert features["pixels"]["knn_accuracy"] > 0.9 and features["pixels"]["linear_probe_accuracy"] > 0.9
    for png in ("denoising_psnr", "latent", "latent_tsne", "manifold"):
        assert (tmp_path / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = (tmp_path / "evaluation.md").read_text()
    assert "| gaussian | 0.4 |" in tables and "| class | 0 | 1 | 2 |" in tables and "on MNIST" in tables

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"eval/reconstruction/mse", "eval/reconstruction/mse_per_class/9", "eval/linear_probe/latent", "eval/knn/pixels"} <= set(events.Tags()["scalars"])
    assert {"eval/manifold", "eval/denoising_psnr", "eval/latent"} <= set(events.Tags()["images"])
    projector = list((tmp_path / "tensorboard").rglob("sprite.png"))
    assert projector and (projector[0].parent / "metadata.tsv").read_text().count("\n") == 30


def test_classical_filters_remove_salt_and_pepper():
    clean = torch.zeros(4, 1, 28, 28)
    clean[:, :, 8:20, 12:16] = 1.0
    noisy = corruption("salt_pepper", 0.1)(clean, torch.Generator().manual_seed(0))
    assert (classical_filter("median 3x3", noisy) - clean).abs().mean() < (noisy - clean).abs().mean() / 4


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "error: Missing mandatory value: ckpt_path"),
        (["ckpt_path={tmp}/missing.ckpt"], "error: ckpt_path {tmp}/missing.ckpt does not exist or is not a file"),
        (["ckpt_path={tmp}/notes.txt"], "error: ckpt_path {tmp}/notes.txt is not a Lightning checkpoint this framework wrote"),
        (  # the model is the checkpoint's: evaluate has no model keys
            ["ckpt_path={ckpt}", "model.latent_dim=8"],
            "error: unknown key 'model.latent_dim': none is close to it (--cfg job lists the config)",
        ),
        (
            ["ckpt_path={ckpt}", "denoising.corruptions=[blur]"],
            "error: denoising.corruptions must be a non-empty list of names from gaussian, masking, salt_pepper, got ['blur']",
        ),
        (["ckpt_path={ckpt}", "data.batch_size=0"], "error: data.batch_size must be an integer >= 1, got 0"),
    ],
)
def test_evaluate_command_line_bad_input(trained_checkpoint, fake_mnist, tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    args = [a.format(tmp=tmp_path, ckpt=trained_checkpoint) for a in args]
    result = run_module("autoencoder.evaluate", *args, f"data.data_dir={fake_mnist}", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith(message.format(tmp=tmp_path)) and "Traceback" not in result.stderr
