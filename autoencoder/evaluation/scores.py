"""Anomaly scores of images under a trained model (higher = more anomalous), shared by the anomaly
command and by the evaluation of a model trained on some classes only.

The scores see different things: the reconstruction errors what the decoder cannot draw, the
latent k-NN distance what the encoder has not seen, the pixel k-NN distance (no model at all) how
far an image is from every training image. Where one is fooled another often is not, so the
combined score adds them up on one scale: each score's log, standardised by its mean and spread
over the normal training images themselves. Only normal images set that scale; no anomaly does.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.metrics import knn_distance, per_image_mse, relative_error
from autoencoder.models.module import LitAutoencoder

# name: as tables head it; the last only for a VAE (variant=vae)
SCORES = {
    "mse": "MSE",
    "relative": "relative-error",
    "latent_knn": "latent k-NN",
    "pixel_knn": "pixel k-NN",
    "combined": "combined",
    "neg_elbo": "negative-ELBO",
}
EVERY_VARIANT = ("mse", "relative", "latent_knn", "pixel_knn", "combined")
COMBINED = ("mse", "relative", "latent_knn", "pixel_knn")  # positive, so their logs exist


def scorer(module: LitAutoencoder, normal: Tensor, k: int) -> Callable[[Tensor], dict[str, Tensor]]:
    """A function giving every anomaly score of each image (N, C, H, W), by name as in SCORES, for
    a model of the `normal` training images (M, C, H, W); k neighbours for the k-NN scores."""
    normal_codes = in_batches(module.encode, normal)  # (M, latent_dim)

    def separate(images: Tensor, of_normal: bool = False) -> dict[str, Tensor]:
        codes = in_batches(module.encode, images)  # (N, latent_dim)
        recon = in_batches(module.decode, codes)  # (N, C, H, W)
        return {
            "mse": per_image_mse(recon, images),
            "relative": relative_error(recon, images),
            "latent_knn": knn_distance(normal_codes, codes, k, exclude_self=of_normal),
            "pixel_knn": knn_distance(normal.flatten(1), images.flatten(1), k, exclude_self=of_normal),
        }

    def log_of(score: Tensor) -> Tensor:
        return score.clamp_min(1e-12).log()

    own = separate(normal, of_normal=True)  # a normal image is not its own neighbour
    scale = {name: (log_of(own[name]).mean(), log_of(own[name]).std().clamp_min(1e-12)) for name in COMBINED}

    def score(images: Tensor) -> dict[str, Tensor]:
        result = separate(images)
        result["combined"] = sum((log_of(result[name]) - mean) / std for name, (mean, std) in scale.items())
        if module.variant.generative:  # seeded: the same posterior samples at every scoring
            generator = torch.Generator().manual_seed(0)
            result["neg_elbo"] = in_batches(lambda x: module.variant.negative_elbo(module.net, x, module.hparams.loss, generator), images)
        return result

    return score
