"""Anomaly scores of images under a trained model (higher = more anomalous), shared by the anomaly
command and by the evaluation of a model trained on some classes only."""

import torch
from torch import Tensor

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.metrics import knn_distance, per_image_mse, relative_error
from autoencoder.models.module import LitAutoencoder

# name: as tables head it; the last only for a VAE (variant=vae)
SCORES = {"mse": "MSE", "relative": "relative-error", "latent_knn": "latent k-NN", "neg_elbo": "negative-ELBO"}
EVERY_VARIANT = ("mse", "relative", "latent_knn")


def scores(module: LitAutoencoder, images: Tensor, normal_codes: Tensor, k: int) -> dict[str, Tensor]:
    """Every anomaly score of each image (higher = more anomalous), by name as in SCORES."""
    codes = in_batches(module.encode, images)  # (N, latent_dim)
    recon = in_batches(module.decode, codes)  # (N, C, H, W)
    result = {"mse": per_image_mse(recon, images), "relative": relative_error(recon, images), "latent_knn": knn_distance(normal_codes, codes, k)}
    if module.variant.generative:  # seeded: the same posterior samples at every scoring
        generator = torch.Generator().manual_seed(0)
        result["neg_elbo"] = in_batches(lambda x: module.variant.negative_elbo(module.net, x, module.hparams.loss, generator), images)
    return result
