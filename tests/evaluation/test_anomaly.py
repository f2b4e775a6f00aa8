import json

import pytest
import torch
from sklearn.metrics import roc_auc_score

import autoencoder.evaluation.anomaly as anomaly_module
from autoencoder.evaluation.anomaly import PUBLISHED, anomaly, table
from autoencoder.training.checkpoints import load_trained
from autoencoder.utils.errors import UserError
from tests.conftest import FAST, compose_entry, run_module
from tests.data.test_mnist import datamodule as make_datamodule


def test_published_means_match_the_paper():
    means = {name: sum(v) / 10 for name, v in PUBLISHED.items()}
    assert means == pytest.approx({"DCAE (Ruff et al.)": 89.65, "OC Deep SVDD (Ruff et al.)": 94.8}, abs=0.01)


def test_table_means_over_digits_then_seeds():
    results = [{"digit": d, "seed": s, "auroc_mse": 90.0 + d + 2 * s, "auroc_relative": 95.0} for d in (0, 1) for s in (0, 1)]
    summary, markdown = table(results, [0, 1], [0, 1])
    assert summary["mse"]["auroc_per_digit"] == {0: [90.0, 92.0], 1: [91.0, 93.0]}
    assert summary["mse"]["mean_auroc"] == pytest.approx(91.5)  # seed means 90.5 and 92.5
    assert summary["mse"]["mean_auroc_std_over_seeds"] == pytest.approx(2**0.5)
    assert summary["relative"]["mean_auroc"] == 95.0 and summary["relative"]["mean_auroc_std_over_seeds"] == 0
    assert "| 0 | 91.0 ± 1.4 | 95.0 ± 0.0 | 97.6 | 98.0 |" in markdown
    assert "| mean | **91.5 ± 1.4** | **95.0 ± 0.0** | 97.95 | 98.85 |" in markdown


def entry(tmp_path, fake_mnist, *overrides):
    return compose_entry("anomaly", tmp_path, f"data.data_dir={fake_mnist}", *FAST, "logger=none", *overrides)


def test_one_class_runs_score_the_whole_test_set_and_resume(fake_mnist, tmp_path, monkeypatch):
    summary = anomaly(entry(tmp_path, fake_mnist, "digits=[0,4]", "seeds=[0]", "data.val_size=100"))
    test_x, test_y = make_datamodule(fake_mnist).split("test")
    assert summary["digits"] == [0, 4] and len(summary["runs"]) == 2
    for run in summary["runs"]:
        folder = tmp_path / f"digit{run['digit']}" / "seed0"
        assert json.loads((folder / "anomaly.json").read_text()) == run
        # The AUROC is that of the run's own checkpoint, scored on the whole test set.
        _, lit = load_trained(run["checkpoint"])
        with torch.no_grad():
            recon = lit(test_x)
        is_anomaly = (test_y != run["digit"]).numpy()
        assert run["auroc_mse"] == pytest.approx(100 * roc_auc_score(is_anomaly, (recon - test_x).square().flatten(1).mean(1).numpy()), abs=1e-6)
        config = (folder / "config.yaml").read_text()
        assert f"classes:\n  - {run['digit']}" in config
    assert json.loads((tmp_path / "anomaly.json").read_text())["mse"]["mean_auroc"] == pytest.approx(summary["mse"]["mean_auroc"])
    assert "| 4 |" in (tmp_path / "anomaly.md").read_text()

    monkeypatch.setattr(anomaly_module, "train", lambda cfg: pytest.fail("a finished run was trained again"))
    assert anomaly(entry(tmp_path, fake_mnist, "digits=[0,4]", "seeds=[0]"))["relative"] == summary["relative"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["digits=[]"], "digits must be a non-empty list"),
        (["digits=[3,12]"], r"digits must be a non-empty list of distinct integers in \[0, 9\], got \[3, 12\]"),
        (["seeds=[1,1]"], "seeds must be a non-empty list of distinct"),
    ],
)
def test_bad_digit_and_seed_lists(fake_mnist, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        anomaly(entry(tmp_path, fake_mnist, *overrides))


def test_empty_class_filter_on_the_command_line(fake_mnist, tmp_path):
    result = run_module("autoencoder.train", f"data.data_dir={fake_mnist}", "data.check_md5=false", "data.classes=[]", cwd=tmp_path)
    assert (
        result.returncode == 2
        and "error: data.classes must be a non-empty list of distinct class names or labels (integers >= 0) or null, got []" in result.stderr
    )
    assert "Traceback" not in result.stderr
