"""What a trained autoencoder's latent space holds beyond the training images
(`python -m autoencoder.sample ckpt_path=...`).

- prior.png: images decoded from codes drawn from a density on the latent space, which shows what
  the model generates on its own. A generative variant (the VAE or the IWAE, with any prior) has
  its prior, and a VQ-VAE the prior over its code grid that autoencoder.code_prior trained; any
  other (plain, sparse, contractive) has none, and gets a Gaussian mixture fitted to the codes of
  its training split (autoencoder.evaluation.mixture), which `source=mixture` asks for a generative
  one too. The fit takes `fit_size` of the training images, a seeded draw: the codes of a few
  thousand images place ten Gaussians about as well as all of them, in a fraction of the time. A
  VQ-VAE without its prior yet is refused unless asked for the mixture: its codes are discrete, and
  a mixture over its large grid code is a poor and slow stand-in.
- interpolation.png: for pairs of images of a split, the images decoded along the straight line
  between their codes, one row per pair with the two real images at its ends. Whether the path
  between two digits passes through digits or through blurs tells how smooth the latent space is.

Both grids also go to TensorBoard (`sample/prior`, `sample/interpolation`), and sample.json lists
the files and the settings. The codes, the mixture's fit and the pairs are drawn with generators
seeded by `seed`, so a run is repeated exactly.
"""

import io
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image

from autoencoder.config.validation import RUN, RUN_DATA, integer, one_of, text, validate
from autoencoder.data.images import SPLITS
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.mixture import COVARIANCES, GaussianMixture
from autoencoder.models.module import LitAutoencoder
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic, write_json

log = logging.getLogger(__name__)

# conf/sample.yaml's keys, data.* for the run's data.
RULES = {
    **RUN,
    **RUN_DATA,
    "ckpt_path": text(),
    "num_samples": integer(1),
    "pairs": integer(1),
    "split": one_of(*SPLITS),
    "steps": integer(2),
    "seed": integer(0, 2**32 - 1),
    "batch_size": integer(1),
    "source": one_of("auto", "model", "mixture"),
    "components": integer(1),
    "covariance": one_of(*COVARIANCES),
    "fit_size": integer(1, null=True),
}

SETTINGS = ("num_samples", "pairs", "steps", "split", "seed", "source", "components", "covariance", "fit_size")


# What a VQ-VAE without its prior is told to do.
TRAIN_CODE_PRIOR = "train one with python -m autoencoder.code_prior ckpt_path=<this checkpoint> and sample the checkpoint it writes"


def image_grid(images: Tensor, per_row: int) -> Tensor:
    """Images (N, C, H, W) as one (3, H', W') grid, `per_row` to a row, with white lines between
    them (as the training's validation grids have)."""
    return make_grid(images, nrow=per_row, pad_value=1.0)


def png_bytes(grid: Tensor) -> bytes:
    """The grid encoded as a PNG in memory, so that it reaches the disk in one atomic write."""
    buffer = io.BytesIO()
    save_image(grid, buffer, format="png")
    return buffer.getvalue()


def fit_subset(images: Tensor, fit_size: int | None, seed: int) -> Tensor:
    """`fit_size` of `images` (N, C, H, W), drawn without replacement by a generator seeded by
    `seed`; all of them, in their order, when `fit_size` is None or at least N."""
    if fit_size is None or fit_size >= len(images):
        return images
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:fit_size]]


def code_mixture(
    module: LitAutoencoder,
    images: Tensor,
    components: int = 10,
    covariance: str = "full",
    seed: int = 0,
    batch_size: int = 1000,
    fit_size: int | None = 10000,
) -> GaussianMixture:
    """The ex-post density of `module`: a mixture of `components` Gaussians fitted to the codes of
    `fit_size` of `images` (N, C, H, W), the training split's (a VAE's codes are its posterior
    means). Only those are encoded."""
    return GaussianMixture.fit(in_batches(module.encode, fit_subset(images, fit_size, seed), batch_size), components, covariance, seed)


@torch.no_grad()
def prior_images(module: LitAutoencoder, n: int, seed: int, batch_size: int = 1000, mixture: GaussianMixture | None = None) -> Tensor:
    """`n` images (n, C, H, W) decoded from codes drawn from `mixture` (`code_mixture`'s) if given,
    else from the generative variant's own prior."""
    generator = torch.Generator().manual_seed(seed)
    if mixture is not None:
        codes = mixture.sample(n, generator)  # (n, latent_dim)
    elif module.variant.has_prior:
        codes = module.variant.sample_prior(module.net, n, generator)
    else:
        raise UserError(f"the {type(module.variant).__name__} variant has no prior to sample from: draw from a mixture fitted to its codes (code_mixture)")
    return in_batches(module.decode, codes.to(module.device), batch_size)


def prior_source(source: str, module: LitAutoencoder) -> str:
    """Where the `source` setting (auto, model or mixture) takes the codes from for this module:
    model or mixture."""
    variant, has_prior = module.variant, module.variant.has_prior
    name = type(variant).__name__
    if source == "model" and not has_prior:
        if variant.mixture_prior:
            raise UserError(f"source=model: the {name} variant has no prior of its own; source=auto or source=mixture fits a Gaussian mixture to its codes")
        raise UserError(f"source=model: this {name} has no prior over its codes yet; {TRAIN_CODE_PRIOR}")
    if source != "auto":
        return source
    if not has_prior and not variant.mixture_prior:
        raise UserError(
            f"source=auto: this {name} has no prior over its codes yet; {TRAIN_CODE_PRIOR}, or ask for source=mixture (covariance=diag) all the same"
        )
    return "model" if has_prior else "mixture"


def choose_pairs(n_images: int, pairs: int, seed: int) -> Tensor:
    """`pairs` pairs (pairs, 2) of positions in a split of `n_images`, all distinct, drawn with
    their own seeded generator: the same pairs whatever else the command draws."""
    return torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))[: 2 * pairs].view(pairs, 2)


@torch.no_grad()
def interpolation(module: LitAutoencoder, first: Tensor, second: Tensor, steps: int, batch_size: int = 1000) -> Tensor:
    """For image pairs `first`, `second` (P, C, H, W) each, rows (P, steps + 2, C, H, W): the first
    image, the images decoded at `steps` evenly spaced points on the line from its code to the
    second's (both codes included), and the second image. The ends are decoded from exactly the two
    codes, so a row's second and last-but-one images are the pair's reconstructions."""
    start, end = in_batches(module.encode, first, batch_size), in_batches(module.encode, second, batch_size)  # (P, latent_dim) each
    t = torch.linspace(0, 1, steps)[None, :, None]  # (1, steps, 1)
    codes = (1 - t) * start[:, None] + t * end[:, None]  # (P, steps, latent_dim); t = 0 and 1 give the codes exactly
    decoded = in_batches(module.decode, codes.flatten(0, 1), batch_size).unflatten(0, codes.shape[:2])  # (P, steps, C, H, W)
    return torch.cat([first[:, None], decoded, second[:, None]], dim=1)


def sample(cfg: DictConfig, data: Mapping | None = None) -> dict:
    """Write prior.png (from the model's prior, or a mixture fitted to its training codes),
    interpolation.png, their TensorBoard images and sample.json to `cfg.output_dir`; returns what
    sample.json holds. `data` is the command line's data (keys of the run's, or another dataset: autoencoder.runs.checkpoints.datamodule_for)."""
    validate(cfg, RULES)
    run_cfg, module = load_trained(cfg.ckpt_path)
    source = prior_source(cfg.source, module)
    datamodule = datamodule_for(run_cfg, data)
    images, _ = datamodule.split(cfg.split)
    if 2 * cfg.pairs > len(images):
        raise UserError(
            f"pairs={cfg.pairs} needs {2 * cfg.pairs} distinct images, but the {cfg.split} split has {len(images)}; ask for at most {len(images) // 2} pairs"
        )

    variant, mixture = type(module.variant).__name__, None
    if source == "mixture":
        mixture = code_mixture(module, datamodule.split("train")[0], cfg.components, cfg.covariance, cfg.seed, cfg.batch_size, cfg.fit_size)
        size = "all" if cfg.fit_size is None else f"at most {cfg.fit_size} of"
        log.info("prior: a mixture of %d Gaussians (%s covariance) fitted to %s the %s variant's training codes", cfg.components, cfg.covariance, size, variant)
    grids = {"prior": image_grid(prior_images(module, cfg.num_samples, cfg.seed, cfg.batch_size, mixture), math.ceil(math.sqrt(cfg.num_samples)))}
    pairs = choose_pairs(len(images), cfg.pairs, cfg.seed)
    rows = interpolation(module, images[pairs[:, 0]], images[pairs[:, 1]], cfg.steps, cfg.batch_size)  # (pairs, steps + 2, C, H, W)
    grids["interpolation"] = image_grid(rows.flatten(0, 1), cfg.steps + 2)

    out = Path(cfg.output_dir)
    writer = SummaryWriter(str(out / "tensorboard"))
    for name, grid in grids.items():
        write_atomic(out / f"{name}.png", png_bytes(grid))
        writer.add_image(f"sample/{name}", grid)
    writer.close()
    result = {
        "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
        "variant": variant,
        "prior": source,  # the model's own, or the mixture fitted to its training codes
        "files": [f"{name}.png" for name in grids],
        "settings": {key: cfg[key] for key in SETTINGS},
        "pair_positions": pairs.tolist(),  # in the split, per row of interpolation.png
    }
    write_json(out / "sample.json", result)
    log.info("%s written to %s", ", ".join(result["files"]), out)
    return result
