import json
import math

import pytest
from omegaconf import OmegaConf

from autoencoder.utils.errors import UserError
from benchmarks.time_to_quality import first_reach, paired_ratios, render, time_to_quality, to_baseline_best
from tests.conftest import FAST, compose_entry

HISTORY = [{"epoch": 1, "val_loss": 0.05, "seconds": 40.0}, {"epoch": 2, "val_loss": 0.042, "seconds": 80.0}, {"epoch": 3, "val_loss": 0.043, "seconds": 120.0}]


def run(reached_seconds: float | None, fit_seconds: float, test_loss: float) -> dict:
    """A run whose one validation, at the end of its fit, saw a val loss equal to its test loss."""
    return {
        "reached_epoch": None if reached_seconds is None else 2,
        "reached_seconds": reached_seconds,
        "fit_seconds": fit_seconds,
        "run_seconds": fit_seconds + 10,
        "epochs": 3,
        "best_val_loss": test_loss,
        "test_loss": test_loss,
        "history": [{"epoch": 3, "val_loss": test_loss, "seconds": fit_seconds}],
    }


def test_the_target_is_reached_at_the_first_epoch_at_or_below_it():
    assert first_reach(HISTORY, 0.042) == HISTORY[1]  # at, not only below
    assert first_reach(HISTORY, 0.06) == HISTORY[0]
    assert first_reach(HISTORY, 0.041) is None


def test_ratios_pair_seeds_skip_unreached_baselines_and_count_unreached_recipes_as_never():
    baseline = [run(300, 900, 0.0420), run(None, 900, 0.0425), run(330, 990, 0.0421)]
    recipe = [run(100, 300, 0.0419), run(90, 300, 0.0419), run(None, 330, 0.0430)]
    assert paired_ratios(recipe, baseline, "reached_seconds") == [pytest.approx(1 / 3), math.inf]
    assert paired_ratios(recipe, baseline, "fit_seconds") == pytest.approx([1 / 3] * 3)


def test_time_to_the_baselines_best_is_paired_by_seed_even_when_the_target_is_missed():
    baseline = [{"history": [*HISTORY, {"epoch": 4, "val_loss": 0.042, "seconds": 160.0}]}]  # best 0.042, first at 80 s
    assert to_baseline_best([{"history": [{"epoch": 1, "val_loss": 0.0419, "seconds": 20.0}]}], baseline) == [0.25]
    assert to_baseline_best([{"history": [{"epoch": 1, "val_loss": 0.0421, "seconds": 20.0}]}], baseline) == [math.inf]


def test_the_table_marks_each_target_met_or_missed(tmp_path):
    cfg = compose_entry("time_to_quality", tmp_path, "seeds=[1,2,3]")
    cfg.recipes = {"before": ["trainer.max_epochs=15"], "fast": [], "slow": ["optimizer.lr=1e-4"]}
    cfg.configs = {"headline": {"overrides": ["noise=0.3"], "target": 0.0422, "test_loss": 0.0420}}
    before = [run(300, 900, 0.0426)] * 3
    fast = [run(90, 280, 0.0421), run(100, 290, 0.0423), run(95, 310, 0.0425)]  # test loss +0.7% (median)
    slow = [run(200, 600, 0.0430)] * 3
    table = render("headline", {"before": before, "fast": fast, "slow": slow}, cfg, "python -m autoencoder.time_to_quality")
    assert "| fast | 3/3 | 2 | 95 | 290 | 300 | 0.04230 | 0.04230 |" in table
    assert "| fast: time to target <= 0.33x | 0.32x | 0.30x, 0.33x, 0.32x | met |" in table
    assert "| fast: time to before's best val loss <= 0.33x | 0.32x | 0.31x, 0.32x, 0.34x | met |" in table
    assert "| fast: fit time <= 0.33x | 0.32x | 0.31x, 0.32x, 0.34x | met |" in table
    assert "| fast: test loss vs documented <= +1% | +0.7% | | met |" in table
    assert "| slow: time to target <= 0.33x | 0.67x | 0.67x, 0.67x, 0.67x | **missed** |" in table
    assert "| slow: test loss vs documented <= +1% | +2.4% | | **missed** |" in table
    assert "| slow: time to before's best val loss <= 0.33x | never | never, never, never | **missed** |" in table  # 0.0430 > 0.0426
    never = render("headline", {"before": [run(None, 900, 0.0426)] * 3, "fast": fast}, cfg, "python -m autoencoder.time_to_quality")
    assert "| fast: time to target <= 0.33x | - | before never reached it | - |" in never


def test_bad_settings(tmp_path):
    with pytest.raises(UserError, match=r"seeds must be a non-empty list of distinct integers in \[0, 4294967295\], got \[1, 1\]"):
        time_to_quality(compose_entry("time_to_quality", tmp_path, "seeds=[1,1]"), "python -m autoencoder.time_to_quality")


def tiny(cfg, fake_mnist, docs, recipes: dict) -> None:
    cfg.recipes = recipes
    cfg.configs = {
        "easy": {"overrides": [], "target": 10.0, "test_loss": 1.0},
        "impossible": {"overrides": ["model.latent_dim=2"], "target": 1e-9, "test_loss": 1.0},
    }
    cfg.overrides = [f"data.data_dir={fake_mnist}", *FAST, "logger=none"]
    cfg.docs = str(docs)


@pytest.mark.slow
def test_each_recipe_is_a_training_run_and_the_table_reaches_the_docs(fake_mnist, tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nnotes kept\n")
    cfg = compose_entry("time_to_quality", tmp_path / "out", "seeds=[7]")
    tiny(cfg, fake_mnist, docs, {"two epochs": ["trainer.max_epochs=2"], "one epoch": []})
    results = time_to_quality(cfg, "python -m autoencoder.time_to_quality (test)")
    for name, epochs in (("two epochs", 2), ("one epoch", 1)):
        (easy,), (impossible,) = results["easy"][name], results["impossible"][name]
        assert easy["reached_epoch"] == 1 and 0 < easy["reached_seconds"] <= easy["fit_seconds"] < easy["run_seconds"]
        assert easy["epochs"] == epochs and easy["test_loss"] > 0
        assert impossible["reached_epoch"] is None and impossible["reached_seconds"] is None
    # The runs are the user's command: seed, config and recipe overrides in each run's config.
    saved = OmegaConf.load(tmp_path / "out" / "impossible" / "recipe0-seed7" / ".hydra" / "config.yaml")
    assert saved.seed == 7 and saved.model.latent_dim == 2 and saved.trainer.max_epochs == 2
    assert json.loads((tmp_path / "out" / "time_to_quality.json").read_text()) == results
    text = docs.read_text()
    easy, impossible = (text.split(f"<!-- bench:time-to-quality:{name} -->")[1] for name in ("easy", "impossible"))
    assert "notes kept" in text and "| one epoch | 1/1 | 1 |" in easy and "| one epoch | 0/1 | - | - |" in impossible


def test_a_failing_run_names_its_log(fake_mnist, tmp_path):
    cfg = compose_entry("time_to_quality", tmp_path / "out", "seeds=[7]", "docs=null")
    tiny(cfg, fake_mnist, tmp_path / "unused.md", {"broken": ["model.latent_dim=0"]})
    with pytest.raises(UserError, match=r"benchmark run '.*model.latent_dim=0.*' failed with exit code 2; its log is .*recipe0-seed7.log"):
        time_to_quality(cfg, "python -m autoencoder.time_to_quality (test)")
    assert "model.latent_dim must be an integer >= 1, got 0" in (tmp_path / "out" / "easy" / "recipe0-seed7.log").read_text()
    assert not (tmp_path / "unused.md").exists()
