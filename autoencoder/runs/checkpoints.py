"""Checkpoints and run folders read back, for the commands on a checkpoint (evaluate, encode, sample,
anomaly) and for resuming. A checkpoint holds the module's hyperparameters (so
`LitAutoencoder.load_from_checkpoint(path)` rebuilds it) and the run's whole config (its data, the
seed, under CONFIG_KEY, which autoencoder.training.checkpoints writes).

A checkpoint may come from someone else, so nothing in it is unpickled as code (weights_only=True),
and a file that does not fit gets one clear line instead of a traceback from deep inside torch.
"""

from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from autoencoder.config.validation import validate
from autoencoder.data.dataset import renamed_data_classes
from autoencoder.data.images import ImageDataModule, data_module
from autoencoder.runs.record import FINAL_STATUSES, run_status
from autoencoder.utils.cli import closest
from autoencoder.utils.errors import UserError, user_message

CONFIG_KEY = "autoencoder_config"
INTERRUPT_CHECKPOINT = "interrupted.ckpt"  # the checkpoint a run stopped by a signal saves


def read_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """The checkpoint's path and contents; a missing or unreadable file is a UserError."""
    ckpt = Path(path).expanduser()
    if not ckpt.is_file():
        raise UserError(f"ckpt_path {ckpt} does not exist or is not a file")
    try:
        contents = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means the same to the user
        unsafe = "it would need unpickling arbitrary objects, which is refused; " if "weights_only" in str(exc) else ""
        raise UserError(f"ckpt_path {ckpt} is not a Lightning checkpoint this framework wrote, or is truncated ({unsafe}{type(exc).__name__})") from exc
    if not isinstance(contents, dict) or not isinstance(contents.get("state_dict"), dict):
        raise UserError(f"ckpt_path {ckpt} is not a Lightning checkpoint this framework wrote (no state_dict)")
    return ckpt, contents


def check_weights(ckpt: Path, state: dict, module: torch.nn.Module) -> None:
    """Fail in one line when the checkpoint's tensors do not fit the module's."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        diff = sorted(set(found.items()) ^ set(expected.items()))[0][0]
        raise UserError(
            f"ckpt_path {ckpt} holds a different model than the configured one (first difference at {diff!r}); use the model config it was trained with"
        )


def check_resume_checkpoint(path: str, module: L.LightningModule) -> str:
    """The checkpoint to resume training from, checked against the configured model."""
    ckpt, contents = read_checkpoint(path)
    check_weights(ckpt, contents["state_dict"], module)
    return str(ckpt)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint a stopped run goes on from: the newer of the one saved when it was
    interrupted and the one saved at its last validation."""
    found = [p for p in (Path(folder) / "checkpoints" / name for name in (INTERRUPT_CHECKPOINT, "last.ckpt")) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def resume_config(folder: str | Path, defaults: DictConfig) -> DictConfig:
    """The config that continues a stopped run in its own folder: the run's config.yaml, with
    `ckpt_path` at its latest checkpoint. Top-level keys newer than the run come from `defaults`."""
    run = Path(folder).expanduser()
    last = latest_checkpoint(run)
    if not (run / "config.yaml").is_file() or last is None:
        raise UserError(f"resume={run} is not a run folder with config.yaml and a checkpoint in checkpoints/; give the folder of a run that saved one")
    if (status := run_status(run)) in FINAL_STATUSES:
        raise UserError(f"resume={run}: that run is {status} (metrics.json), so there is nothing to resume; start a new run, or train further with ckpt_path=")
    cfg = renamed_data_classes(OmegaConf.load(run / "config.yaml"))
    for key in defaults:
        if key not in cfg:
            cfg[key] = defaults[key]
    cfg.output_dir, cfg.ckpt_path, cfg.resume = str(run), str(last), None
    return cfg


def run_config(ckpt: Path, contents: dict) -> DictConfig:
    """The config a checkpoint was trained with: stored inside it, or (a checkpoint saved without
    ConfigInCheckpoint) the run folder's config.yaml next to its checkpoints/ folder."""
    if CONFIG_KEY in contents:
        return renamed_data_classes(OmegaConf.create(contents[CONFIG_KEY]))
    beside = ckpt.parent.parent / "config.yaml"
    if ckpt.parent.name == "checkpoints" and beside.is_file():
        return renamed_data_classes(OmegaConf.load(beside))
    raise UserError(f"ckpt_path {ckpt} carries no training config and has no run folder config.yaml beside it; pass a checkpoint written by autoencoder.train")


def load_trained(path: str | Path) -> tuple[DictConfig, L.LightningModule]:
    """The run config and the trained LightningModule (on CPU, in eval mode) of a checkpoint,
    loaded the Lightning way: `<module class>.load_from_checkpoint`, with weights_only."""
    ckpt, contents = read_checkpoint(path)
    cfg = run_config(ckpt, contents)
    if "hyper_parameters" not in contents:
        raise UserError(f"ckpt_path {ckpt} was written by an older version of this framework (no hyperparameters in it); train the model again")
    try:
        module = get_class(cfg.module._target_).load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever does not fit, the checkpoint is the problem
        reason = user_message(exc) or " ".join(str(exc).split())[:200]
        raise UserError(f"ckpt_path {ckpt} does not rebuild its model: {reason}") from exc
    return cfg, module.eval()


def datamodule_for(cfg: DictConfig, given: Mapping | None = None) -> ImageDataModule:
    """The data module a command on the run `cfg`'s checkpoint reads, with every class and training
    image. `given` is the command line's `data`: keys that replace the run's own (`data.data_dir=`
    where the files are now; the rest, its split and seed, stay), or a whole data config
    (`data=<dataset>`, it has a `_target_`): that dataset, if its images have the shape the model
    was trained on. Anything else is a UserError."""
    run = OmegaConf.to_container(cfg.data, resolve=True)
    if isinstance(given, DictConfig):  # resolved as in training, where `${seed}` is the run's seed
        given = OmegaConf.to_container(OmegaConf.create({"seed": cfg.seed, "data": OmegaConf.to_container(given)}), resolve=True)["data"]
    given = dict(given or {})
    name = run["_target_"].rsplit(".", 1)[-1]
    if "_target_" in given:
        shape, trained = given.get("image_shape"), run.get("image_shape") or OmegaConf.to_container(cfg.model.input_shape)
        if shape != trained:
            other = given["_target_"].rsplit(".", 1)[-1]
            raise UserError(f"data: {other}'s images are {shape} but the model was trained on {trained} images ({name}); pick a dataset of that shape")
        data = given
    elif unknown := [key for key in given if key not in run]:
        near = closest(unknown[0], run)
        hint = f"did you mean {' or '.join(f'data.{k}' for k in near)}?" if near else f"its keys: {', '.join(k for k in run if k != '_target_')}"
        raise UserError(f"data.{unknown[0]} is not a setting of the run's data ({name}): {hint}")
    else:
        data = run | given
    data = OmegaConf.create(data | {"classes": None, "train_size": None})
    validate(data, prefix="data.")
    return data_module(data)
