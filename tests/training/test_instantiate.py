import pytest
from lightning.pytorch.callbacks import EarlyStopping, Timer

from autoencoder.training.callbacks import EpochSummary, StopOnDivergence, ValidationImages
from autoencoder.training.checkpoints import EpochCheckpoint
from autoencoder.training.instantiate import instantiate_callbacks
from autoencoder.training.run import train
from autoencoder.utils.errors import UserError


def kinds(callbacks) -> list[type]:
    return [type(c) for c in callbacks]


def test_the_default_callbacks_in_their_order(make_cfg):
    built = instantiate_callbacks(make_cfg().callbacks)
    assert kinds(built)[:5] == [EpochCheckpoint, EarlyStopping, EpochSummary, StopOnDivergence, ValidationImages]
    assert built[0].dirpath.endswith("/run/checkpoints") and built[1].patience == 5


def test_added_removed_and_left_out_callbacks(make_cfg):
    built = instantiate_callbacks(
        make_cfg("+callbacks.timer._target_=lightning.pytorch.callbacks.Timer", "~callbacks.validation_images", "early_stopping=none").callbacks
    )
    assert Timer in kinds(built) and ValidationImages not in kinds(built) and EarlyStopping not in kinds(built)


def test_a_callback_entry_without_a_target(make_cfg):
    with pytest.raises(UserError, match=r"callbacks.mine must be a callback config with a _target_, got \{'patience': 3\}"):
        instantiate_callbacks(make_cfg("+callbacks.mine.patience=3").callbacks)


def test_a_run_uses_what_the_config_lists(make_cfg, tmp_path):
    metrics = train(make_cfg("+callbacks.timer._target_=lightning.pytorch.callbacks.Timer", "~callbacks.validation_images", "~callbacks.model_checkpoint"))
    assert metrics["best_checkpoint"] is None and not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "reconstructions.png").exists() and metrics["test_loss"] is not None
