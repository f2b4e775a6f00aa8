"""The generation measure on a VAE trained for a few batches: FID and precision/recall of its prior
samples beside the training images' floor, its classifier trained on first use, and the Inception
path through torchmetrics with a stand-in for Inception-v3."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.classifier import cache_folder
from autoencoder.evaluation.evaluate import evaluate
from autoencoder.evaluation.generation import frechet_distance
from autoencoder.evaluation.measures import generation
from autoencoder.evaluation.measures.generation import Generation, inception_fid, inception_network
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from autoencoder.utils.errors import UserError
from tests.conftest import compose_entry, make_fake_mnist, train_briefly

GENERATION_ONLY = ["~measures.reconstruction", "~measures.denoising", "~measures.latent", "~measures.features", "~measures.likelihood", "~measures.anomaly"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Fake MNIST of this module's own: the measure caches its classifier there."""
    return make_fake_mnist(tmp_path_factory.mktemp("generation_data"))


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory, data_dir) -> Path:
    return train_briefly(data_dir, tmp_path_factory.mktemp("vae"), "variant=vae", "model.latent_dim=4")


def run(checkpoint: Path, out: Path, data_dir: Path, *overrides: str):
    cfg = compose_entry("evaluate", out, f"ckpt_path={checkpoint}", *GENERATION_ONLY, "generation.samples=40", *overrides)
    return evaluate(cfg, {"data_dir": str(data_dir)})


@pytest.mark.slow
def test_a_vae_gets_fid_precision_and_recall_beside_the_floor(vae_checkpoint, data_dir, tmp_path):
    result = run(vae_checkpoint, tmp_path, data_dir)
    measured = result["generation"]
    assert json.loads((tmp_path / "evaluation.json").read_text())["generation"] == measured
    assert measured["images"] == 40 and measured["knn_k"] == 3 and measured["prior"] == "model" and len(measured["classifier"]["sha256"]) == 64
    for row in ("samples", "floor"):
        assert measured[row]["fid"] >= 0 and 0 <= measured[row]["precision"] <= 1 and 0 <= measured[row]["recall"] <= 1
    assert measured["floor"]["fid"] < measured["samples"]["fid"]  # a VAE trained for 3 batches is far from the data
    assert result.headline == {key: measured["samples"][key] for key in ("fid", "precision", "recall")}
    assert "| prior samples vs test images |" in (tmp_path / "evaluation.md").read_text()
    dataset = datamodule_for(load_trained(vae_checkpoint)[0], {"data_dir": str(data_dir)}).dataset
    assert (cache_folder(dataset) / "1x28x28.json").is_file()  # trained on first use
    assert run(vae_checkpoint, tmp_path / "again", data_dir)["generation"] == measured  # seeded: the same samples and images


@pytest.mark.slow
def test_a_model_without_a_prior_samples_a_mixture_fitted_to_its_training_codes(data_dir, tmp_path):
    measured = run(train_briefly(data_dir, tmp_path / "ae", "model.latent_dim=4"), tmp_path / "eval", data_dir, "generation.components=2")["generation"]
    assert measured["prior"] == "mixture of 2 Gaussians, full covariance, on the training codes"
    assert measured["samples"]["fid"] > measured["floor"]["fid"] >= 0 and 0 <= measured["samples"]["recall"] <= 1


class StandIn(nn.Module):
    """A stand-in for Inception-v3: uint8 RGB images (N, 3, H, W) to 6 features by a fixed projection."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(3 * 28 * 28, 6)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(images.float().div(255).flatten(1))


def test_the_inception_path_runs_torchmetrics_fid_on_the_network_given(vae_checkpoint, data_dir, tmp_path, monkeypatch):
    torch.manual_seed(0)
    network = StandIn()
    monkeypatch.setattr(generation, "inception_network", lambda: network)
    measured = run(vae_checkpoint, tmp_path, data_dir, "generation.inception=true")["generation"]
    assert measured["samples"]["inception_fid"] >= 0 and measured["floor"]["inception_fid"] >= 0
    assert "FID (Inception)" in (tmp_path / "evaluation.md").read_text()
    # torchmetrics' FID is the Fréchet distance of the network's features of the uint8 RGB images.
    real, fake = torch.rand(30, 1, 28, 28), torch.rand(20, 1, 28, 28) * 0.5
    as_input = lambda x: (x * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)  # noqa: E731
    with torch.no_grad():
        expected = frechet_distance(network(as_input(real)), network(as_input(fake)))
    assert inception_fid(network, real, fake, batch_size=7) == pytest.approx(expected, rel=1e-4)


def test_inception_without_torch_fidelity_is_one_line():
    try:
        import torch_fidelity  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(UserError, match=r"^generation.inception=true needs torch-fidelity for Inception-v3: pip install torch-fidelity"):
            inception_network()
    else:
        pytest.skip("torch-fidelity is installed")


def test_too_few_samples_for_the_neighbours_are_refused():
    with pytest.raises(UserError, match=r"^generation.samples=3 must be larger than generation.knn_k=3"):
        Generation(samples=3)


@pytest.mark.slow
def test_on_binarised_data_the_samples_compared_are_binary_draws(data_dir, tmp_path, monkeypatch):
    checkpoint = train_briefly(data_dir, tmp_path / "vae", "variant=vae", "loss=bce", "data.binarize=true", "model.latent_dim=4")
    compared = []  # the test, training and sample images whose features are compared, in that order

    def features_of(function, images, batch_size):
        compared.append(images)
        return in_batches(function, images, batch_size)

    monkeypatch.setattr(generation, "in_batches", features_of)
    measured = run(checkpoint, tmp_path / "eval", data_dir)["generation"]
    assert measured["binary"] is True and len(compared) == 3
    assert all(((images == 0) | (images == 1)).all() for images in compared)  # the decoder's means are grey
    assert 0.1 < compared[2].mean() < 0.9
