import pytest
import torch

from autoencoder.evaluation.scores import COMBINED, EVERY_VARIANT, scorer
from autoencoder.runs.checkpoints import load_trained
from tests.data.test_mnist import datamodule as make_datamodule


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
