"""The measures are plug-ins: evaluate runs whatever `measures` names, skips without a trace one
that does not apply, and writes every part of what each hands back; a bad entry is one clear line."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoder.evaluation.evaluate import evaluate, instantiate_measures
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.utils.errors import UserError
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table
from tests.conftest import compose_entry, train_briefly

# Reconstruction alone of the built-in measures that apply to the test checkpoint (an AE trained on
# every class: no likelihood, no anomaly detection; generation left out), so that the evaluation is quick.
RECONSTRUCTION_ONLY = ["~measures.denoising", "~measures.latent", "~measures.features", "~measures.generation"]


class Toy(Measure):
    """A measure only the tests know: the test images' mean brightness times `scale`, in every output."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        brightness = self.scale * float(subject.split("test")[0].mean())
        return Outcome(
            result={"brightness": brightness},
            tables=[markdown_table(["toy brightness"], [[f"{brightness:.4f}"]])],
            scalars={"toy/brightness": brightness},
            figures={"toy": torch.full((1, 4, 4), 0.5)},
            headline={"toy_brightness": brightness},
        )


class Never(Measure):
    """A measure for no checkpoint: running it is the failure."""

    def applies(self, subject: Subject) -> bool:
        return False

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        raise AssertionError("a measure that does not apply was run")


def scalars(folder) -> dict[str, float]:
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    return {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}


def test_a_measure_added_by_config_alone_reaches_every_output(trained_checkpoint, fake_mnist, tmp_path, capsys):
    toy = f"+measures.toy={{_target_:{__name__}.Toy,scale:2}}"
    result = evaluate(compose_entry("evaluate", tmp_path, f"ckpt_path={trained_checkpoint}", *RECONSTRUCTION_ONLY, toy), {"data_dir": str(fake_mnist)})
    brightness = result["toy"]["brightness"]
    assert json.loads((tmp_path / "evaluation.json").read_text()) == result and list(result)[-2:] == ["reconstruction", "toy"]
    assert brightness > 0 and result.headline == {"test_mse": result["reconstruction"]["mse"], "toy_brightness": brightness}
    assert f"| toy brightness |\n|---|\n| {brightness:.4f} |" in (tmp_path / "evaluation.md").read_text()
    assert scalars(tmp_path)["eval/toy/brightness"] == pytest.approx(brightness)
    assert (tmp_path / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "progress: evaluate  3/3 steps  100%  figures and TensorBoard" in capsys.readouterr().out  # reconstruction, toy, writing


def test_a_measure_that_does_not_apply_is_skipped_and_leaves_no_trace(trained_checkpoint, fake_mnist, tmp_path, capsys):
    never = f"+measures.never._target_={__name__}.Never"
    result = evaluate(compose_entry("evaluate", tmp_path, f"ckpt_path={trained_checkpoint}", *RECONSTRUCTION_ONLY, never), {"data_dir": str(fake_mnist)})
    # Nor do the likelihood (not a VAE) and the anomaly detection (trained on every class) leave one.
    assert list(result) == ["checkpoint", "data", "latent_dim", "trained_noise", "settings", "reconstruction"]
    assert result["settings"]["measures"]["never"] == {"_target_": f"{__name__}.Never"}  # what it was asked for, applied or not
    assert result.headline == {"test_mse": result["reconstruction"]["mse"]}
    assert json.loads((tmp_path / "evaluation.json").read_text()) == result
    heads = [table.splitlines()[0] for table in (tmp_path / "evaluation.md").read_text().split("\n\n")[1:]]
    assert heads == ["| test MSE | test BCE | test PSNR (dB) | test SSIM |", "| class | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |"]  # the reconstruction's
    assert all(tag.startswith("eval/reconstruction/") for tag in scalars(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json", "evaluation.md", "tensorboard"]
    assert "progress: evaluate  2/2 steps  100%  figures and TensorBoard" in capsys.readouterr().out  # reconstruction, writing


def test_measures_are_built_in_order_and_a_null_entry_is_left_out():
    entries = {"toy": {"_target_": f"{__name__}.Toy", "scale": 3}, "gone": None, "never": {"_target_": f"{__name__}.Never"}}
    built = instantiate_measures(OmegaConf.create(entries))
    assert list(built) == ["toy", "never"] and built["toy"].scale == 3


@pytest.mark.parametrize(
    "entry, message",
    [
        (5, "measures.toy must be a measure config with a _target_, got 5"),
        ({"scale": 2}, "measures.toy must be a measure config with a _target_, got {'scale': 2}"),
        ({"_target_": "builtins.dict"}, "measures.toy: builtins.dict is not a measure (a subclass of autoencoder.evaluation.measures.base.Measure)"),
    ],
)
def test_a_bad_measure_entry_is_a_user_error(entry, message):
    with pytest.raises(UserError) as error:
        instantiate_measures(OmegaConf.create({"toy": entry}))
    assert str(error.value) == message


@pytest.mark.slow
def test_a_model_of_a_transformation_is_scored_on_restoring_each_one(fake_mnist, tmp_path):
    checkpoint = train_briefly(fake_mnist, tmp_path / "run", "model.latent_dim=2", "corruption=flip")
    result = evaluate(compose_entry("evaluate", tmp_path / "eval", f"ckpt_path={checkpoint}", *RECONSTRUCTION_ONLY), {"data_dir": str(fake_mnist)})
    none, horizontal, mean = result["restoration"]
    assert [none["transformation"], horizontal["transformation"]] == ["flipped none", "flipped horizontal"]
    assert none["psnr_transformed_db"] is None and none["psnr_restored_db"] == pytest.approx(result["reconstruction"]["psnr_db"], abs=1e-3)
    assert mean == {"transformation": "mean (changed images)", **{key: horizontal[key] for key in ("psnr_transformed_db", "psnr_restored_db")}}
    assert result.headline["restoration_psnr"] == horizontal["psnr_restored_db"]
    assert "| flipped none | - |" in (tmp_path / "eval" / "evaluation.md").read_text()


def test_restoration_does_not_apply_to_a_model_of_noise(trained_checkpoint, fake_mnist, tmp_path):
    result = evaluate(compose_entry("evaluate", tmp_path, f"ckpt_path={trained_checkpoint}", *RECONSTRUCTION_ONLY), {"data_dir": str(fake_mnist)})
    assert "restoration" not in result and "restoration_psnr" not in result.headline
