"""A learned prior for a trained VQ-VAE (`python -m autoencoder.code_prior ckpt_path=...`).

The VQ-VAE is trained first, without a prior; this fits one (autoencoder.models.code_prior) to
the grids of code indices of its training split, by maximum likelihood, chooses the epoch with the
lowest negative log-likelihood on its validation split (stopping after `patience` epochs without a
better one), and writes a new checkpoint beside the given one, `<name>-prior.ckpt`: the same
checkpoint with the prior's config added to the variant's hyperparameters and its weights to the
state, so that `LitAutoencoder.load_from_checkpoint` builds the VQ-VAE with its prior, and sample,
evaluate's generation measure and anything else that asks the variant for its prior use it. The
given checkpoint is never changed. The new one is for the commands on a checkpoint; training
resumes from the old one.

The prior trains on the CPU: the grids are small (7x7 for MNIST), and the draws stay seeded alike
everywhere. code_prior.json in the command's folder lists the checkpoint and each epoch's losses.
"""

import io
import logging
from copy import deepcopy
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from autoencoder.config.validation import RUN, RUN_DATA, integer, number, text, validate
from autoencoder.evaluation.batched import in_batches
from autoencoder.models.quantised import VQVAE
from autoencoder.runs.checkpoints import datamodule_for, load_trained, read_checkpoint
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic, write_json
from autoencoder.utils.progress import Counted, Reporter

log = logging.getLogger(__name__)

# conf/code_prior.yaml's keys; the prior's own are its class's (`prior`), data.* for the run's data.
RULES = {
    **RUN,
    **RUN_DATA,
    "ckpt_path": text(),
    "epochs": integer(1),
    "patience": integer(1),
    "batch_size": integer(1),
    "lr": number(above=0),
    "seed": integer(0, 2**32 - 1),
}


def nats_per_place(prior: torch.nn.Module, grids: Tensor) -> Tensor:
    """The mean negative log-likelihood of grids (N, h, w), in nats per place (a differentiable scalar)."""
    return -prior.log_prob(grids).mean() / grids[0].numel()


def fit(prior: torch.nn.Module, train: Tensor, val: Tensor, cfg: DictConfig) -> list[dict]:
    """Train `prior` on grids `train` (N, h, w) with Adam, `cfg.epochs` passes in shuffled batches,
    and leave it at the epoch with the lowest validation loss; returns each epoch's losses. Where
    stdout is not a terminal, `progress:` lines count the batches."""
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    batches = Counted(Reporter(**cfg.progress), "code prior", cfg.epochs * -(-len(train) // cfg.batch_size), "batches")
    history, best, best_state = [], float("inf"), None
    for epoch in range(1, cfg.epochs + 1):
        prior.train()
        losses = []
        for batch in torch.randperm(len(train), generator=shuffle).split(cfg.batch_size):
            loss = nats_per_place(prior, train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            batches.advance(note=f"epoch {epoch}  loss {losses[-1]:.4f}")
        prior.eval()
        with torch.no_grad():
            val_loss = torch.cat([-prior.log_prob(chunk) for chunk in val.split(cfg.batch_size)]).mean().item() / val[0].numel()
        history.append({"epoch": epoch, "train_nats_per_place": sum(losses) / len(losses), "val_nats_per_place": val_loss})
        log.info("code prior epoch %d: train %.4f, val %.4f nats per place", epoch, history[-1]["train_nats_per_place"], val_loss)
        if val_loss < best:
            best, best_state = val_loss, deepcopy(prior.state_dict())
        elif epoch - min(history, key=lambda h: h["val_nats_per_place"])["epoch"] >= cfg.patience:
            break
    prior.load_state_dict(best_state)
    return history


def with_prior(ckpt: Path, prior_config: dict, prior: torch.nn.Module) -> bytes:
    """The checkpoint `ckpt`, its variant given the prior: its config in the hyperparameters, its
    weights under `variant.prior.` (those of an earlier prior dropped)."""
    _, contents = read_checkpoint(ckpt)
    hyper = dict(contents["hyper_parameters"])
    hyper["variant"] = {**hyper["variant"], "prior": prior_config}
    state = {key: value for key, value in contents["state_dict"].items() if not key.startswith("variant.prior.")}
    state |= {f"variant.prior.{key}": value for key, value in prior.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({**contents, "hyper_parameters": hyper, "state_dict": state}, buffer)
    return buffer.getvalue()


def train_code_prior(cfg: DictConfig, data: DictConfig | None = None) -> dict:
    """Fit the prior `cfg.prior` to the code grids of the VQ-VAE at `cfg.ckpt_path` and write the
    checkpoint that holds both beside it; returns what code_prior.json holds. `data` is the
    command line's data (as for sample: autoencoder.runs.checkpoints.datamodule_for)."""
    validate(cfg, RULES)
    run_cfg, module = load_trained(cfg.ckpt_path)
    variant = module.variant
    if not isinstance(variant, VQVAE):
        raise UserError(f"ckpt_path {cfg.ckpt_path} holds a {type(variant).__name__} variant: a code prior is learned over a VQ-VAE's grid (variant=vqvae)")
    datamodule = datamodule_for(run_cfg, data)
    grids = {
        split: in_batches(lambda x: variant.indices(module.net, x), datamodule.split(split)[0], cfg.batch_size).long()  # (N, h, w)
        for split in ("train", "val")
    }
    if not len(grids["val"]):
        raise UserError("the code prior's epoch is chosen on the validation split, and the run has none: train the VQ-VAE with data.val_size > 0")
    prior_config = {**OmegaConf.to_container(cfg.prior, resolve=True), "codebook_size": len(variant.codebook)}
    torch.manual_seed(cfg.seed)  # the prior's initial weights
    prior = instantiate(prior_config)
    history = fit(prior, grids["train"], grids["val"], cfg)

    ckpt = Path(cfg.ckpt_path).expanduser().resolve()
    written = ckpt.with_name(f"{ckpt.stem}-prior.ckpt")
    write_atomic(written, with_prior(ckpt, prior_config, prior))
    best = min(history, key=lambda h: h["val_nats_per_place"])
    result = {"checkpoint": str(ckpt), "written": str(written), "prior": prior_config, "grid": list(grids["train"].shape[1:]), "best_epoch": best["epoch"]}
    result["history"] = history
    write_json(Path(cfg.output_dir) / "code_prior.json", result)
    log.info("prior of epoch %d (val %.4f nats per place) written with the VQ-VAE to %s", best["epoch"], best["val_nats_per_place"], written)
    return result
