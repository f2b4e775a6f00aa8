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

A pass with k = 5000 takes hours on a CPU, so it can write down how far it got (`partial`): the
per-image figures so far and the random generator's state, every SAVE_SECONDS and when Ctrl-C
or SIGTERM stops it (a killed pass loses at most SAVE_SECONDS). Started again with the same model,
images and settings, it goes on from there and draws what a pass left alone would have drawn, so
its figure is the same to the last digit.
"""

import hashlib
import io
import logging
import math
import time
from pathlib import Path

import torch
from rich.progress import track
from torch import Tensor

from autoencoder.models.gaussians import posterior
from autoencoder.models.module import LitAutoencoder
from autoencoder.utils.errors import Stopped
from autoencoder.utils.files import write_atomic
from autoencoder.utils.progress import Counted, Reporter

log = logging.getLogger(__name__)

SAVE_SECONDS = 60.0  # how often a pass with a `partial` file writes its progress down


def _fingerprint(module: LitAutoencoder, images: Tensor, samples: int, decodes: int, seed: int) -> str:
    """What a pass's figures depend on, hashed: the network's and the variant's (its prior's)
    weights, the images and the settings."""
    digest = hashlib.sha256(repr((samples, decodes, seed, tuple(images.shape))).encode())
    for tensor in [*module.net.state_dict().values(), *module.variant.state_dict().values(), images]:
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _resumed(partial: Path | None, fingerprint: str) -> dict:
    """What `partial` holds of a pass with this fingerprint; nothing for another pass's file or
    for one that cannot be read (it is only work in progress: the pass starts over and replaces it)."""
    if partial is None or not partial.is_file():
        return {}
    try:
        done = torch.load(partial, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means the same: start over
        log.warning("%s cannot be read (%s); the likelihood pass starts from the first image", partial, type(exc).__name__)
        return {}
    return done if isinstance(done, dict) and done.get("fingerprint") == fingerprint else {}


def _write_down(partial: Path, state: dict) -> None:
    """Replace `partial` with `state` atomically: a pass killed while writing leaves the last one whole."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(partial, buffer.getbuffer())


def _bounds(module: LitAutoencoder, x: Tensor, samples: int, chunk: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The -ELBO and the importance-weighted bound on -log p(x) of the images `x` (B, C, H, W),
    (B,) each, their `samples` draws decoded `chunk` at a time."""
    variant, loss = module.variant, module.hparams.loss
    negative_elbo = variant.negative_elbo(module.net, x, loss, generator)
    mean, logvar = posterior(module.net.encode(x))  # (B, latent_dim) each, for all the group's samples
    log_weights = torch.cat(
        [variant.weights_of(module.net, mean, logvar, x, min(chunk, samples - start), loss, generator) for start in range(0, samples, chunk)], dim=1
    )  # (B, samples)
    return negative_elbo, math.log(samples) - log_weights.logsumexp(1)


@torch.no_grad()
def likelihood(
    module: LitAutoencoder, images: Tensor, samples: int, decodes: int, seed: int = 0, progress: Reporter | None = None, partial: Path | None = None
) -> dict:
    """Mean negative ELBO and importance-weighted -log p(x) estimate with `samples` draws, in nats
    per image, of `images` (N, C, H, W) under the VAE `module`; silent without `progress`. With
    `partial`, the pass goes on from what that file holds of the same pass, writes its own progress
    there (every SAVE_SECONDS, and when interrupted), and removes it when done."""
    generator = torch.Generator().manual_seed(seed)
    per_pass = max(1, decodes // samples)  # images per forward pass when all their samples fit in one
    chunk = min(samples, decodes)  # samples per forward pass otherwise
    fingerprint = _fingerprint(module, images, samples, decodes, seed) if partial else ""
    done = _resumed(partial, fingerprint)
    negative_elbo, negative_bound = done.get("negative_elbo", []), done.get("negative_bound", [])  # per group, (B,) each
    if done:
        generator.set_state(done["generator"])
    groups = images.split(per_pass)
    lines = Counted(progress, f"likelihood k={samples}", len(images), "images") if progress else None  # printing nothing on a terminal
    if lines and negative_bound:
        lines.advance(sum(len(b) for b in negative_bound), note="resumed")

    def progress_so_far() -> dict:  # the finished groups, and the generator as the next group finds it
        return {"fingerprint": fingerprint, "negative_elbo": negative_elbo, "negative_bound": negative_bound, "generator": between_groups}

    written, between_groups = time.monotonic(), generator.get_state()
    try:
        with module.variant.prior.fixed(module.net):  # a VampPrior's pseudo-inputs encoded once, not per call
            for x in track(groups[len(negative_bound) :], description=f"log p(x), k={samples}", disable=progress is None or not progress.terminal):
                elbo, bound = _bounds(module, x, samples, chunk, generator)
                negative_elbo.append(elbo)
                negative_bound.append(bound)
                between_groups = generator.get_state()
                if lines:
                    lines.advance(len(x))
                if partial and time.monotonic() - written >= SAVE_SECONDS:
                    _write_down(partial, progress_so_far())
                    written = time.monotonic()
    except (KeyboardInterrupt, Stopped):  # Ctrl-C, SIGTERM
        if partial:
            _write_down(partial, progress_so_far())
            count = sum(len(b) for b in negative_bound)
            log.warning("the likelihood pass stopped at %d of %d images; %s keeps them, and the same command goes on from there", count, len(images), partial)
        raise
    if partial:
        partial.unlink(missing_ok=True)
    return {
        "samples": samples,
        "negative_elbo_nats": float(torch.cat(negative_elbo).mean()),
        "nll_nats": float(torch.cat(negative_bound).mean()),
    }
