import math

import pytest
import torch
from hydra.utils import instantiate

from autoencoder.evaluation.scores import COMBINED, EVERY_VARIANT, RESTORATION, restoration_scores, scorer
from autoencoder.models.corruption import Gaussian
from autoencoder.runs.checkpoints import load_trained
from autoencoder.utils.errors import UserError
from tests.data.test_mnist import datamodule as make_datamodule
from tests.models.test_module import rotation_module


def test_the_combined_score_adds_logs_standardised_on_the_normal_images(trained_checkpoint, fake_mnist):
    _, lit = load_trained(trained_checkpoint)
    dm = make_datamodule(fake_mnist, val_size=100)
    train_x, train_y = dm.split("train")
    normal, (val_x, _) = train_x[train_y == 3], dm.split("val")
    result = scorer(lit, normal, 5)(val_x)
    assert set(result) == set(EVERY_VARIANT) and all(s.shape == (len(val_x),) for s in result.values())

    # By hand: the normal images' own scores, each image's k-NN distances leaving itself out.
    with torch.no_grad():
        codes = lit.encode(normal)
        recon = lit.decode(codes)
    own_distances = torch.cdist(codes, codes).sort(1).values[:, 1:6].mean(1), torch.cdist(normal.flatten(1), normal.flatten(1)).sort(1).values[:, 1:6].mean(1)
    own = {
        "mse": (recon - normal).square().flatten(1).mean(1),
        "relative": (recon - normal).square().flatten(1).sum(1) / normal.square().flatten(1).sum(1),
        "latent_knn": own_distances[0],
        "pixel_knn": own_distances[1],
    }
    expected = sum((result[name].log() - own[name].log().mean()) / own[name].log().std() for name in COMBINED)
    assert result["combined"] == pytest.approx(expected, abs=1e-4)


def test_scores_of_an_image_do_not_depend_on_the_others_scored_with_it(trained_checkpoint, fake_mnist):
    # Only the normal training images set the combined score's scale, never the images scored.
    _, lit = load_trained(trained_checkpoint)
    dm = make_datamodule(fake_mnist, val_size=100)
    (train_x, train_y), (val_x, _) = dm.split("train"), dm.split("val")
    score = scorer(lit, train_x[train_y == 3], 5)
    alone, together = score(val_x[:5]), score(val_x)
    for name in EVERY_VARIANT:
        torch.testing.assert_close(alone[name], together[name][:5], rtol=1e-4, atol=1e-4)


def test_restoration_scores_by_hand_on_a_tiny_case():
    # The identity network restores nothing: its error from rotation k is that of the rotated image.
    lit = rotation_module(weight=0.5).eval()
    x = torch.rand(5, 1, 2, 2)
    errors = torch.stack([(torch.rot90(x, k, dims=(-2, -1)) - x).pow(2).flatten(1).mean(1) for k in range(4)])  # (4, 5)
    scores = restoration_scores(lit, x)
    torch.testing.assert_close(scores["restoration"], errors.mean(0))
    torch.testing.assert_close(scores["restoration_max"], errors.amax(0))
    # p(k) = (k + 1) / 10 whatever the image: -log p of the right one, averaged over the four
    expected_nll = -sum(math.log((k + 1) / 10) for k in range(4)) / 4
    torch.testing.assert_close(scores["transform_nll"], torch.full((5,), expected_nll))
    assert restoration_scores(rotation_module(weight=0).eval(), x).keys() == {"restoration", "restoration_max"}


def rotation_model(make_cfg, fake_mnist):
    """A conv model (untrained, in eval mode) of rotations with a head, and class 3's training images."""
    lit = instantiate(make_cfg("corruption=rotation", "module.transform_head_weight=0.1", "model.latent_dim=4").module).eval()
    dm = make_datamodule(fake_mnist, val_size=100)
    (train_x, train_y), (val_x, _) = dm.split("train"), dm.split("val")
    return lit, train_x[train_y == 3], val_x


def test_restoration_scores_join_the_combined_score(make_cfg, fake_mnist):
    lit, normal, val_x = rotation_model(make_cfg, fake_mnist)
    result = scorer(lit, normal, 5)(val_x)
    assert set(result) == {*EVERY_VARIANT, *RESTORATION}
    # the combined score is the plain one plus the restoration scores, standardised on the normal images
    own = restoration_scores(lit, normal)
    added = sum((result[name].log() - own[name].log().mean()) / own[name].log().std() for name in RESTORATION)
    lit.corruption = Gaussian(noise=0.0)  # the same network as a model of no transformation: no restoration scores
    plain = scorer(lit, normal, 5)(val_x)
    assert set(plain) == set(EVERY_VARIANT)
    torch.testing.assert_close(result["combined"], plain["combined"] + added, rtol=1e-4, atol=1e-4)


def test_restoration_scores_are_seeded_and_independent_of_the_batch(make_cfg, fake_mnist):
    lit, normal, val_x = rotation_model(make_cfg, fake_mnist)
    score = scorer(lit, normal, 5)
    alone, together, again = score(val_x[:5]), score(val_x), score(val_x)
    for name in (*RESTORATION, "combined"):
        torch.testing.assert_close(alone[name], together[name][:5], rtol=1e-4, atol=1e-4)
        assert torch.equal(together[name], again[name])


def test_the_combined_score_sums_the_scores_combine_names(make_cfg, fake_mnist):
    lit, normal, val_x = rotation_model(make_cfg, fake_mnist)
    every, chosen = scorer(lit, normal, 5)(val_x), scorer(lit, normal, 5, ["mse", "transform_nll"])(val_x)
    own = {**scorer(lit, normal, 5)(normal), **restoration_scores(lit, normal)}  # mse needs no neighbours; its own scale
    expected = sum((every[name].log() - own[name].log().mean()) / own[name].log().std() for name in ("mse", "transform_nll"))
    torch.testing.assert_close(chosen["combined"], expected, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(chosen[name], every[name]) for name in RESTORATION)


def test_combine_names_only_scores_the_model_has(trained_checkpoint, fake_mnist):
    _, lit = load_trained(trained_checkpoint)
    with pytest.raises(
        UserError, match="^combine: 'restoration' is not a score of this model, whose scores to combine are mse, relative, latent_knn, pixel_knn$"
    ):
        scorer(lit, torch.rand(10, 1, 28, 28), 5, ["mse", "restoration"])
