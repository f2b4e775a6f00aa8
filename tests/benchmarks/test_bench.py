import json

import pytest

from autoencoder.utils.errors import UserError
from benchmarks.suite import COMPUTE, DEFAULTS, LECTURE, bench, ratios, write_section
from tests.conftest import compose_entry


def run(samples_per_s: float, val_loss: float | None, precision: str = "bf16-mixed") -> dict:
    return {"samples_per_s": samples_per_s, "val_loss": val_loss, "precision": precision}


def test_ratios_are_medians_of_paired_repeats_against_the_targets():
    results = {
        LECTURE: [run(100, 0.0200, "32-true"), run(100, 0.0200, "32-true"), run(50, 0.0200, "32-true")],
        DEFAULTS: [run(310, 0.0204), run(290, 0.0204), run(160, 0.0204)],
        "b: fp32": [run(150, 0.0202, "32-true")] * 3,
        COMPUTE: [run(330, None), run(310, None), run(170, None)],
    }
    rows = {name: (values, met) for name, values, _, met in ratios(results)}
    speedup, met = rows["b / a training samples/s"]
    assert speedup == pytest.approx([3.1, 2.9, 3.2]) and met  # median 3.1 >= 3
    assert not rows["b / c training samples/s"][1]  # 0.939, 0.935, 0.941: median 0.939 < 0.95
    assert rows["b val loss vs a (%)"][0] == pytest.approx([2.0] * 3) and rows["b val loss vs a (%)"][1]
    assert rows["b val loss (bf16-mixed) vs fp32 (%)"][0] == pytest.approx([100 * (0.0204 / 0.0202 - 1)] * 3)


def test_write_section_replaces_only_its_own_accelerator(tmp_path):
    path = tmp_path / "benchmarks.md"
    write_section(path, "cpu", "first cpu table\n")
    write_section(path, "gpu", "gpu table\n")
    path.write_text(path.read_text() + "\nhand-written notes\n")
    write_section(path, "cpu", "second cpu table\n")
    text = path.read_text()
    assert "second cpu table" in text and "first cpu table" not in text
    assert "gpu table" in text and "hand-written notes" in text and text.count("<!-- bench:cpu -->") == 1


def test_bad_settings(tmp_path):
    with pytest.raises(UserError, match="epochs must be an integer >= 2, got 1"):
        bench(compose_entry("bench", tmp_path, "epochs=1"), "python -m autoencoder.bench epochs=1")


@pytest.mark.slow
def test_bench_times_all_three_kinds_on_the_same_images(fake_mnist, tmp_path):
    cfg = compose_entry("bench", tmp_path / "out", "train_size=64", "epochs=2", "repeats=1", "accelerator=cpu", f"docs={tmp_path / 'benchmarks.md'}")
    cfg.framework_variants, cfg.compute_variants = {}, {}
    cfg.overrides = ["trainer.num_sanity_val_steps=0", "logger=none"]
    results = bench(cfg, "python -m autoencoder.bench (test)", {"data_dir": str(fake_mnist), "val_size": 50, "check_md5": False})
    assert list(results) == [LECTURE, DEFAULTS, COMPUTE]
    for label, (result,) in results.items():
        assert result["samples_per_s"] > 0 and result["first_epoch_samples_per_s"] > 0
        assert 0 < result["startup_s"] < 120 and result["peak_rss_mb"] > 0
        assert (result["val_loss"] is None) == (label == COMPUTE)
    assert results[LECTURE][0]["precision"] == "32-true"
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved == results
    section = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- bench:cpu -->" in section and "| b / a training samples/s >= 3x |" in section
