import os
from pathlib import Path

import lightning as L
import pytest
import torch

from autoencoder.runs.checkpoints import load_trained
from autoencoder.utils.errors import UserError


def test_a_checkpoint_write_that_fails_leaves_the_previous_checkpoint_and_no_partial_file(make_cfg, tmp_path, monkeypatch):
    from autoencoder.training.run import train
    from autoencoder.utils import files

    class DiskFullFromEpoch2(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                self.last_before = (folder / "last.ckpt").read_bytes()
                monkeypatch.setattr(files.os, "fsync", disk_full)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    folder, full = tmp_path / "run" / "checkpoints", DiskFullFromEpoch2()
    with pytest.raises(UserError, match=rf"cannot write best-epoch002.ckpt in {folder}: No space left on device \(\d+ bytes needed\)"):
        train(make_cfg("trainer.max_epochs=2", "logger=none"), callbacks=[full])
    assert (folder / "last.ckpt").read_bytes() == full.last_before
    assert sorted(p.name for p in folder.iterdir()) == ["best-epoch001.ckpt", "last.ckpt"]


def test_stale_temporary_files_of_killed_writes_are_removed_and_live_ones_kept(tmp_path):
    from autoencoder.utils.files import remove_stale_temporaries

    dead, alive = tmp_path / ".last.ckpt.4194999.tmp", tmp_path / f".best.ckpt.{os.getpid()}.tmp"  # 4194999: above Linux's pid limit
    for path in (dead, alive):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert not dead.exists() and alive.exists()


def test_checkpoint_names_count_epochs_from_1_as_the_console_does(make_cfg, tmp_path, capsys):
    from autoencoder.training.run import train

    metrics = train(make_cfg("trainer.max_epochs=2", "logger=none", "early_stopping=none"))
    best = min(metrics["history"], key=lambda h: h["val_loss"])
    assert Path(metrics["best_checkpoint"]).name == f"best-epoch{best['epoch']:03d}.ckpt"
    assert f"[Epoch   {best['epoch']}] train" in capsys.readouterr().out
    old_name = tmp_path / "best-epoch000.ckpt"  # how checkpoints were named before
    old_name.write_bytes(Path(metrics["best_checkpoint"]).read_bytes())
    assert load_trained(old_name)[1].net.latent_dim == 32


def test_last_ckpt_is_the_last_epochs_when_the_best_is_an_earlier_one(make_cfg):
    from autoencoder.training.run import train

    # monitored with mode=min, the epoch number makes epoch 1 the best one for good
    metrics = train(make_cfg("trainer.max_epochs=3", "logger=none", "early_stopping=none", "callbacks.model_checkpoint.monitor=epoch"))
    folder = Path(metrics["last_checkpoint"]).parent
    assert sorted(p.name for p in folder.iterdir()) == ["best-epoch001.ckpt", "last.ckpt"]
    last, best = (torch.load(folder / name, weights_only=True) for name in ("last.ckpt", "best-epoch001.ckpt"))
    assert (last["epoch"], last["global_step"]) == (2, 3 * best["global_step"])  # what a resumed run goes on from
