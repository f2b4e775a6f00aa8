"""The study table end to end on the fake data: a plain autoencoder, a VAE and a VQ-VAE trained,
the VQ-VAE given its code prior, each evaluated and sampled; run again, nothing is trained, and
with other evaluation settings, each is evaluated again."""

import json

import pytest

import autoencoder.workflows.study as study_module
from autoencoder.utils.errors import UserError
from autoencoder.workflows.study import study
from tests.conftest import FAST, compose_entry

# The study's command line: every model trains briefly on the fake data, with small measures.
SMALL = [
    *FAST,
    "logger=none",
    "model.latent_dim=4",
    "evaluation.generation.samples=20",
    "evaluation.generation.components=2",
    "evaluation.likelihood.samples=4",
    "code_prior.epochs=1",
    "samples=4",
]


def command_line(fake_mnist, *overrides: str) -> list[str]:
    return [f"data.data_dir={fake_mnist}", *SMALL, *overrides]


@pytest.mark.slow
def test_the_study_writes_a_row_per_model_and_the_floor_and_resumes_without_training(fake_mnist, tmp_path, monkeypatch):
    line = command_line(fake_mnist, "only=[ae_mixture,vae,vqvae]")
    summary = study(compose_entry("study", tmp_path, *line), line)

    rows = {r["model"]: r for r in summary["models"]}
    assert list(rows) == ["ae_mixture", "vae", "vqvae"]
    assert rows["vae"]["overrides"] == ["variant=vae"] and rows["ae_mixture"]["overrides"] == []
    for name, r in rows.items():
        evaluation = json.loads((tmp_path / name / "evaluation" / "evaluation.json").read_text())
        assert set(evaluation) >= {"reconstruction", "generation"} and "denoising" not in evaluation  # the table's measures only
        assert r["test_mse"] == evaluation["reconstruction"]["mse"] and r["fid"] == evaluation["generation"]["samples"]["fid"]
        assert r["train_seconds"] > 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
        assert (tmp_path / r["prior_png"]).is_file() and r["prior_png"] == f"{name}/sample/prior.png"
        assert f"[prior.png]({name}/sample/prior.png)" in (tmp_path / "study.md").read_text()
    # The likelihood is the VAE's alone; the VQ-VAE was evaluated and sampled with its code prior.
    assert rows["vae"]["nll_nats"] > 0 and rows["vae"]["nll_samples"] == 4
    assert rows["ae_mixture"]["nll_nats"] is None and rows["vqvae"]["nll_samples"] is None
    vq_evaluation = json.loads((tmp_path / "vqvae" / "evaluation" / "evaluation.json").read_text())
    assert vq_evaluation["checkpoint"].endswith("-prior.ckpt") and vq_evaluation["generation"]["prior"] == "model"
    assert summary["floor"] == vq_evaluation["generation"]["floor"]
    markdown = (tmp_path / "study.md").read_text()
    assert markdown.count("| training images (floor) |") == 1 and "| vae | `variant=vae` |" in markdown and "| vqvae |" in markdown
    assert json.loads((tmp_path / "study.json").read_text()) == summary

    # Started again in its folder: nothing is trained, the code prior is not trained again, the table is the same.
    checkpoints = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.ckpt")}
    monkeypatch.setattr(study_module, "train_and_evaluate", lambda cfg: pytest.fail(f"{cfg.output_dir} was trained again"))
    monkeypatch.setattr(study_module.code_prior, "train_code_prior", lambda cfg: pytest.fail("the code prior was trained again"))
    evaluate = study_module.evaluate
    monkeypatch.setattr(study_module, "evaluate", lambda cfg: pytest.fail("a model was evaluated again"))
    assert study(compose_entry("study", tmp_path, *line), line) == summary
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.ckpt")} == checkpoints

    # Started again with other evaluation settings: every model is evaluated again, none trained.
    evaluated = []
    monkeypatch.setattr(study_module, "evaluate", lambda cfg: evaluated.append(cfg.ckpt_path) or evaluate(cfg))
    more = [*line, "evaluation.likelihood.samples=6"]
    rows = {r["model"]: r for r in study(compose_entry("study", tmp_path, *more), more)["models"]}
    assert len(evaluated) == 3 and rows["vae"]["nll_samples"] == 6 and rows["ae_mixture"]["prior_png"] == "ae_mixture/sample/prior.png"


def test_the_command_line_reaches_every_model_and_the_models_overrides_win(fake_mnist, tmp_path):
    line = command_line(fake_mnist, "variant=sparse", "noise=0.2")
    cfg = compose_entry("study", tmp_path, *line)
    vamp = study_module.model_config(cfg, "vae_vamp", line, tmp_path)
    assert vamp.variant._target_.endswith("Variational") and vamp.prior._target_.endswith("VampPrior")
    assert vamp.noise == 0.2 and vamp.model.latent_dim == 4 and vamp.output_dir == str(tmp_path / "vae_vamp") and vamp.evaluate is False
    assert vamp.resume_unfinished is True  # a training stopped with the study goes on
    assert "models" not in vamp and "only" not in vamp and "code_prior" not in vamp
    assert study_module.model_config(cfg, "ae_mixture", line, tmp_path).variant._target_.endswith("Sparse")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["only=[vae,gan]"], "only: 'gan' is not a model of the study (its models: ae_mixture, sparse, contractive, vae, iwae, vae_vamp, vqvae)"),
        (['models.vae=["variant=wae"]'], "models.vae=['variant=wae']: unknown variant option 'wae' (allowed: ae, contractive, iwae, sparse, vae, vqvae)"),
        (['models.vae=["variant=vae","variant.bta=2"]'], "models.vae=['variant=vae', 'variant.bta=2']: unknown key 'variant.bta'"),
        (
            ['+models.cae=["variant=contractive","compile=true"]', "only=[cae]"],
            "models.cae=['variant=contractive', 'compile=true']: variant=contractive needs compile=false",
        ),
        (["code_prior.epochs=0"], "code_prior.epochs must be an integer >= 1, got 0"),
        (["samples=0"], "samples must be an integer >= 1, got 0"),
    ],
)
def test_bad_models_and_settings_stop_the_study_before_it_trains(fake_mnist, tmp_path, monkeypatch, overrides, message):
    monkeypatch.setattr(study_module, "train_and_evaluate", lambda cfg: pytest.fail("trained despite a bad setting"))
    line = command_line(fake_mnist, *overrides)
    with pytest.raises(UserError) as error:
        study(compose_entry("study", tmp_path, *line), line)
    assert str(error.value).startswith(message)
