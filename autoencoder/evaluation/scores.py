"""Anomaly scores of images under a trained model (higher = more anomalous), shared by the anomaly
command and by the evaluation of a model trained on some classes only.

The scores see different things: the reconstruction errors what the decoder cannot draw, the
latent k-NN distance what the encoder has not seen, the pixel k-NN distance (no model at all) how
far an image is from every training image. Where one is fooled another often is not, so the
combined score adds them up on one scale: each score's log, standardised by its mean and spread
over the normal training images themselves. Only normal images set that scale; no anomaly does.

A model trained to undo a transformation corruption (rotation, flip, ...: ARNet's restoration) is
also scored by how well it restores an image from every transformation of its set: the mean and
the worst restoration error. Only an image with the attribute the transformations erase, that of
the normal class, is restored well. With the module's transformation head, the mean negative
log-likelihood it gives the right transformation is a score too (GeoTrans). These join the combined
score. They are deterministic: the whole set, no random draw, so no image's score depends on the
others scored with it.
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.metrics import knn_distance, per_image_mse, relative_error
from autoencoder.models.corruption import Transformations
from autoencoder.models.module import LitAutoencoder
from autoencoder.utils.errors import UserError

# name: as tables head it; the last only for a VAE (variant=vae)
SCORES = {
    "mse": "MSE",
    "relative": "relative-error",
    "latent_knn": "latent k-NN",
    "pixel_knn": "pixel k-NN",
    "combined": "combined",
    "neg_elbo": "negative-ELBO",
    "restoration": "restoration-error",
    "restoration_max": "worst restoration-error",
    "transform_nll": "transformation-NLL",
}
EVERY_VARIANT = ("mse", "relative", "latent_knn", "pixel_knn", "combined")
COMBINED = ("mse", "relative", "latent_knn", "pixel_knn")  # positive, so their logs exist
# a model trained on a transformation corruption's, the last with a transformation head; positive, and combined too
RESTORATION = ("restoration", "restoration_max", "transform_nll")


def transformed(module: LitAutoencoder, images: Tensor, k: int) -> Tensor:
    """Images (N, C, H, W) under transformation k of the module's corruption's set, without noise."""
    return module.corruption.transform(images, torch.full((len(images),), k, device=images.device))


@torch.no_grad()
def restorations(module: LitAutoencoder, image: Tensor) -> tuple[Tensor, Tensor]:
    """An image (C, H, W) under each transformation of the set and their restorations: (T, C, H, W) each."""
    count = module.corruption.count
    inputs = module.corruption.transform(image.expand(count, *image.shape), torch.arange(count, device=image.device))
    return inputs, module(inputs).float()


def restoration_scores(module: LitAutoencoder, images: Tensor) -> dict[str, Tensor]:
    """The scores of RESTORATION that the module has: none for a model of a noise corruption. Each
    transformed image is encoded once, for its restoration and for the head's guess."""
    if not isinstance(module.corruption, Transformations):
        return {}
    errors, nll = [], []  # T of (N,) each
    for k in range(module.corruption.count):
        codes = in_batches(lambda x, k=k: module.encode(transformed(module, x, k)), images)  # (N, latent_dim)
        errors.append(per_image_mse(in_batches(module.decode, codes), images))  # restored from transformation k
        if module.transform_head is not None:  # -log p(k | code of transformation k)
            nll.append(-in_batches(module.transform_head, codes).log_softmax(1)[:, k])
    errors = torch.stack(errors)  # (T, N)
    scores = {"restoration": errors.mean(0), "restoration_max": errors.amax(0)}
    if nll:
        scores["transform_nll"] = torch.stack(nll).mean(0)
    return scores


def parts(module: LitAutoencoder) -> list[str]:
    """The scores of COMBINED and RESTORATION the module has, those the combined score can sum."""
    if not isinstance(module.corruption, Transformations):
        return list(COMBINED)
    return [*COMBINED, *RESTORATION[:2], *(["transform_nll"] if module.transform_head is not None else [])]


def scorer(module: LitAutoencoder, normal: Tensor, k: int, combine: Sequence[str] | None = None) -> Callable[[Tensor], dict[str, Tensor]]:
    """A function giving every anomaly score of each image (N, C, H, W), by name as in SCORES, for
    a model of the `normal` training images (M, C, H, W); k neighbours for the k-NN scores. The
    restoration scores are there for a model of a transformation corruption. The combined score
    sums the scores `combine` names, by default every one of `parts(module)`."""
    combined = list(combine) if combine else parts(module)
    if unknown := [name for name in combined if name not in parts(module)]:
        raise UserError(f"combine: {unknown[0]!r} is not a score of this model, whose scores to combine are {', '.join(parts(module))}")
    normal_codes = in_batches(module.encode, normal)  # (M, latent_dim)

    def separate(images: Tensor, of_normal: bool = False) -> dict[str, Tensor]:
        codes = in_batches(module.encode, images)  # (N, latent_dim)
        recon = in_batches(module.decode, codes)  # (N, C, H, W)
        return {
            "mse": per_image_mse(recon, images),
            "relative": relative_error(recon, images),
            "latent_knn": knn_distance(normal_codes, codes, k, exclude_self=of_normal),
            "pixel_knn": knn_distance(normal.flatten(1), images.flatten(1), k, exclude_self=of_normal),
            **restoration_scores(module, images),
        }

    def log_of(score: Tensor) -> Tensor:
        return score.clamp_min(1e-12).log()

    own = separate(normal, of_normal=True)  # a normal image is not its own neighbour
    scale = {name: (log_of(own[name]).mean(), log_of(own[name]).std().clamp_min(1e-12)) for name in combined}

    def score(images: Tensor) -> dict[str, Tensor]:
        result = separate(images)
        result["combined"] = sum((log_of(result[name]) - mean) / std for name, (mean, std) in scale.items())
        if module.variant.generative:  # seeded: the same posterior samples at every scoring
            generator = torch.Generator().manual_seed(0)
            result["neg_elbo"] = in_batches(lambda x: module.variant.negative_elbo(module.net, x, module.hparams.loss, generator), images)
        return result

    return score
