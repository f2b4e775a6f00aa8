import json
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score

import autoencoder.workflows.anomaly as anomaly_module
from autoencoder.data.mnist import FashionMNIST
from autoencoder.runs.checkpoints import load_trained
from autoencoder.utils.errors import UserError
from autoencoder.workflows.anomaly import PUBLISHED, anomaly, table
from tests.conftest import FAST, compose_entry, make_fake_mnist, run_module
from tests.data.test_mnist import datamodule as make_datamodule


def test_published_means_match_the_papers():
    means = {name: sum(v) / 10 for table in PUBLISHED.values() for name, v in table.items()}
    assert means == pytest.approx(
        {"DCAE (Ruff et al.)": 89.65, "OC Deep SVDD (Ruff et al.)": 94.8, "GeoTrans (Golan & El-Yaniv)": 93.5, "ARNet (Ye et al.)": 93.9},
        abs=0.1,  # the papers' means are of unrounded per-class figures
    )


def test_table_means_over_classes_then_seeds_and_chooses_the_score_on_validation():
    results = [
        {"class": c, "seed": s, "test_auroc_mse": 90.0 + c + 2 * s, "test_auroc_relative": 95.0, "val_auroc_mse": 80.0, "val_auroc_relative": 70.0 + c}
        | {"test_auroc_latent_knn": 50.0, "val_auroc_latent_knn": 60.0}
        for c in (0, 1)
        for s in (0, 1)
    ]
    summary, markdown = table(results, [0, 1], [0, 1], ("0", "1"), PUBLISHED["MNIST"])
    assert summary["test"]["mse"]["auroc_per_class"] == {0: [90.0, 92.0], 1: [91.0, 93.0]}
    assert summary["test"]["mse"]["mean_auroc"] == pytest.approx(91.5)  # seed means 90.5 and 92.5
    assert summary["test"]["mse"]["mean_auroc_std_over_seeds"] == pytest.approx(2**0.5)
    assert summary["test"]["relative"]["mean_auroc"] == 95.0 and summary["test"]["relative"]["mean_auroc_std_over_seeds"] == 0
    # The relative error wins on test, but the MSE score on validation: the MSE score is chosen.
    assert summary["chosen_score"] == "mse"
    assert "| 0 | 91.0 ± 1.4 | 95.0 ± 0.0 | 50.0 ± 0.0 | 80.0 ± 0.0 | 70.0 ± 0.0 | 60.0 ± 0.0 | 97.6 | 98.0 |" in markdown
    assert "| mean | **91.5 ± 1.4** | **95.0 ± 0.0** | **50.0 ± 0.0** | **80.0 ± 0.0** | **70.5 ± 0.0** | **60.0 ± 0.0** | 97.95 | 98.85 |" in markdown


def test_class_names_label_the_rows():
    results = [{"class": 7, "seed": 0, "val_auroc_mse": 80.0, "val_auroc_relative": 70.0, "val_auroc_latent_knn": 90.0}]
    summary, markdown = table(results, [7], [0], FashionMNIST.class_names, {})
    assert summary["class_names"] == ["7 Sneaker"] and "test" not in summary and summary["chosen_score"] == "latent_knn"
    assert markdown.splitlines()[0] == "| class | val, MSE score | val, relative-error score | val, latent k-NN score |"
    assert "| 7 Sneaker | 80.0 | 70.0 | 90.0 |" in markdown


def entry(tmp_path, fake_mnist, *overrides):
    return compose_entry("anomaly", tmp_path, f"data.data_dir={fake_mnist}", *FAST, "logger=none", *overrides)


def test_one_class_runs_score_whole_splits_and_resume(fake_mnist, tmp_path, monkeypatch):
    # Chosen without the test set: the test set is not scored at all.
    summary = anomaly(entry(tmp_path, fake_mnist, "classes=[0,4]", "seeds=[0]", "data.val_size=100", "test=false"))
    assert summary["classes"] == [0, 4] and len(summary["runs"]) == 2 and "test" not in summary
    assert all("test_auroc_mse" not in run for run in summary["runs"])
    dm = make_datamodule(fake_mnist, val_size=100)
    for run in summary["runs"]:
        folder = tmp_path / f"class{run['class']}" / "seed0"
        assert json.loads((folder / "anomaly.json").read_text()) == run
        # The validation AUROC is that of the run's own checkpoint on the whole validation split,
        # every class in it, though the run trained and validated on one class.
        val_x, val_y = dm.split("val")
        _, lit = load_trained(run["checkpoint"])
        with torch.no_grad():
            recon = lit(val_x)
        is_anomaly = (val_y != run["class"]).numpy()
        assert run["val_auroc_mse"] == pytest.approx(100 * roc_auc_score(is_anomaly, (recon - val_x).square().flatten(1).mean(1).numpy()), abs=1e-6)
        # The latent k-NN score: distances to the codes of the run's own training images.
        train_x, train_y = dm.split("train")
        with torch.no_grad():
            normal, codes = lit.encode(train_x[train_y == run["class"]]), lit.encode(val_x)
        distances = torch.cdist(codes, normal).sort(1).values[:, :5].mean(1)
        assert run["val_auroc_latent_knn"] == pytest.approx(100 * roc_auc_score(is_anomaly, distances.numpy()), abs=1e-6)
        # The pixel k-NN score: the same distance between raw images, no model in it.
        normal_x = train_x[train_y == run["class"]].flatten(1)
        pixels = torch.cdist(val_x.flatten(1), normal_x).sort(1).values[:, :5].mean(1)
        assert run["val_auroc_pixel_knn"] == pytest.approx(100 * roc_auc_score(is_anomaly, pixels.numpy()), abs=1e-6)
        assert f"classes:\n  - {run['class']}" in (folder / "config.yaml").read_text()
    assert json.loads((tmp_path / "anomaly.json").read_text())["val"]["mse"]["mean_auroc"] == pytest.approx(summary["val"]["mse"]["mean_auroc"])
    assert "| 4 |" in (tmp_path / "anomaly.md").read_text()

    # Asked again with the test set, the trained runs are scored on it, not trained again.
    monkeypatch.setattr(anomaly_module, "train_and_evaluate", lambda cfg: pytest.fail("a finished run was trained again"))
    again = anomaly(entry(tmp_path, fake_mnist, "classes=[0,4]", "seeds=[0]", "data.val_size=100"))
    assert again["val"] == summary["val"] and set(again["test"]) == {"mse", "relative", "latent_knn", "pixel_knn", "combined"}
    test_x, test_y = dm.split("test")
    run = again["runs"][1]
    with torch.no_grad():
        recon = load_trained(run["checkpoint"])[1](test_x)
    errors = (recon - test_x).square().flatten(1).mean(1).numpy()
    assert run["test_auroc_mse"] == pytest.approx(100 * roc_auc_score((test_y != 4).numpy(), errors), abs=1e-6)


def test_a_vae_adds_its_negative_elbo_score(fake_mnist, tmp_path):
    summary = anomaly(entry(tmp_path, fake_mnist, "variant=vae", "loss=bce", "classes=[3]", "seeds=[0]", "data.val_size=100"))
    assert set(summary["val"]) == set(summary["test"]) == {"mse", "relative", "latent_knn", "pixel_knn", "combined", "neg_elbo"}
    run = summary["runs"][0]
    val_x, val_y = make_datamodule(fake_mnist, val_size=100).split("val")
    _, lit = load_trained(run["checkpoint"])
    with torch.no_grad():
        neg_elbo = lit.variant.negative_elbo(lit.net, val_x, "bce", torch.Generator().manual_seed(0))
    assert run["val_auroc_neg_elbo"] == pytest.approx(100 * roc_auc_score((val_y != 3).numpy(), neg_elbo.numpy()), abs=1e-6)
    assert "negative-ELBO score" in (tmp_path / "anomaly.md").read_text()


@pytest.mark.slow
def test_a_model_of_rotations_adds_its_restoration_scores_and_draws_them(fake_mnist, tmp_path):
    summary = anomaly(entry(tmp_path, fake_mnist, "corruption=rotation", "module.transform_head_weight=0.1", "classes=[3]", "seeds=[0]", "test=false"))
    assert set(summary["val"]) == {"mse", "relative", "latent_knn", "pixel_knn", "combined", "restoration", "restoration_max", "transform_nll"}
    run = summary["runs"][0]
    val_x, val_y = make_datamodule(fake_mnist, val_size=50).split("val")
    _, lit = load_trained(run["checkpoint"])
    with torch.no_grad():  # the mean restoration error over the four rotations, undone by the model
        errors = torch.stack([(lit(torch.rot90(val_x, k, dims=(-2, -1))) - val_x).square().flatten(1).mean(1) for k in range(4)])
    assert run["val_auroc_restoration"] == pytest.approx(100 * roc_auc_score((val_y != 3).numpy(), errors.mean(0).numpy()), abs=1e-6)
    assert "worst restoration-error score" in (tmp_path / "anomaly.md").read_text()
    assert (tmp_path / "class3" / "seed0" / "restorations.png").stat().st_size > 0
    # Another choice of the scores the combined one sums scores the same model again, untrained.
    modified = Path(run["checkpoint"]).stat().st_mtime_ns
    again = anomaly(
        entry(
            tmp_path, fake_mnist, "corruption=rotation", "module.transform_head_weight=0.1", "classes=[3]", "seeds=[0]", "test=false", "combine=[transform_nll]"
        )
    )
    assert again["runs"][0]["combine"] == ["transform_nll"] and Path(run["checkpoint"]).stat().st_mtime_ns == modified
    assert again["val"]["combined"]["mean_auroc"] == pytest.approx(again["val"]["transform_nll"]["mean_auroc"])  # one score, standardised: the same order


def test_classes_by_name_on_another_dataset(tmp_path):
    data = make_fake_mnist(tmp_path / "data", "FashionMNIST")
    summary = anomaly(entry(tmp_path / "out", data, "data=fashion_mnist", "classes=[sneaker]", "seeds=[0]", "data.val_size=100"))
    assert summary["classes"] == [7] and summary["class_names"] == ["7 Sneaker"] and summary["data"] == "FashionMNIST"
    assert "| 7 Sneaker |" in (tmp_path / "out" / "anomaly.md").read_text()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["classes=[]"], "classes must be a non-empty list"),
        (["classes=[3,12]"], r"^classes: 12 is not a class of MNIST \(its classes: 0, 1, 2"),
        (["test=maybe"], "test must be true or false, got 'maybe'"),
        (["seeds=[1,1]"], "seeds must be a non-empty list of distinct"),
        (
            ["combine=[mse,ssim]"],
            r"^combine must be null or a non-empty list of names from mse, relative, .*, transform_nll, got \['mse', 'ssim'\]$",
        ),
        (["combine=[restoration]"], "^combine: 'restoration' is not a score of this model, whose scores to combine are mse, relative, latent_knn, pixel_knn$"),
    ],
)
def test_bad_class_and_seed_lists(fake_mnist, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        anomaly(entry(tmp_path, fake_mnist, *overrides))


def test_empty_class_filter_on_the_command_line(fake_mnist, tmp_path):
    result = run_module("autoencoder.train", f"data.data_dir={fake_mnist}", "data.check_md5=false", "data.classes=[]", cwd=tmp_path)
    assert (
        result.returncode == 2
        and "error: data.classes must be a non-empty list of distinct class names or labels (integers >= 0) or null, got []" in result.stderr
    )
    assert "Traceback" not in result.stderr
