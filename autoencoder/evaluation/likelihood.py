"""A VAE's likelihood of test images, in nats: the ELBO and the importance-weighted bound.

The importance-weighted bound (Burda et al. 2016) with k samples z_k ~ q(z|x),
log p(x) >= log (1/k) sum_k p(x, z_k) / q(z_k|x), is the ELBO for k = 1 and tightens as k grows;
with k = 5000 it is the usual estimate of -log p(x) on binarised MNIST. Images go through in
groups whose samples (images x k) stay under `decodes` per forward pass, so memory is bounded
whatever k is. A hundred or so per pass is also fastest on a CPU: a pass of thousands holds
activations of hundreds of MB, which the allocator takes from the kernel and hands back at every
pass, so that much of the time went to the kernel rather than to the arithmetic (docs/benchmarks.md,
the likelihood pass). With a `progress` Reporter, a progress bar counts the images on a terminal,
and plain `progress:` lines elsewhere (a log file), where a bar would be noise.
"""

import math

import torch
from rich.progress import track
from torch import Tensor

from autoencoder.models.gaussians import posterior
from autoencoder.models.module import LitAutoencoder
from autoencoder.utils.progress import Counted, Reporter


@torch.no_grad()
def likelihood(module: LitAutoencoder, images: Tensor, samples: int, decodes: int, seed: int = 0, progress: Reporter | None = None) -> dict:
    """Mean negative ELBO and importance-weighted -log p(x) estimate with `samples` draws, in nats
    per image, of `images` (N, C, H, W) under the VAE `module`; silent without `progress`."""
    variant, loss, generator = module.variant, module.hparams.loss, torch.Generator().manual_seed(seed)
    per_pass = max(1, decodes // samples)  # images per forward pass when all their samples fit in one
    chunk = min(samples, decodes)  # samples per forward pass otherwise
    negative_elbo, negative_bound = [], []
    groups = images.split(per_pass)
    lines = Counted(progress, f"likelihood k={samples}", len(images), "images") if progress else None  # printing nothing on a terminal
    with variant.prior.fixed(module.net):  # a VampPrior's pseudo-inputs encoded once, not per call
        for x in track(groups, description=f"log p(x), k={samples}", disable=progress is None or not progress.terminal):
            negative_elbo.append(variant.negative_elbo(module.net, x, loss, generator))
            mean, logvar = posterior(module.net.encode(x))  # (B, latent_dim) each, for all the group's samples
            log_weights = torch.cat(
                [variant.weights_of(module.net, mean, logvar, x, min(chunk, samples - start), loss, generator) for start in range(0, samples, chunk)],
                dim=1,
            )  # (B, samples)
            negative_bound.append(math.log(samples) - log_weights.logsumexp(1))  # (B,)
            if lines:
                lines.advance(len(x))
    return {
        "samples": samples,
        "negative_elbo_nats": float(torch.cat(negative_elbo).mean()),
        "nll_nats": float(torch.cat(negative_bound).mean()),
    }
