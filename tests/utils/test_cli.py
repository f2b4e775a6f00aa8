import logging
import warnings

from omegaconf import OmegaConf

from autoencoder.utils.cli import overridden, quiet_third_party


def test_overridden_keys_of_a_node_with_their_composed_values():
    cfg = OmegaConf.create({"data": {"data_dir": "/data", "batch_size": 64, "classes": [3]}, "seed": 1})
    hydra_cfg = OmegaConf.create({"overrides": {"task": ["data.data_dir=/data", "seed=1", "+data.batch_size=64", "~data.classes", "data=mnist"]}})
    assert overridden(cfg, "data", hydra_cfg) == {"data_dir": "/data", "batch_size": 64}


def test_quiet_third_party_hides_the_advertisement_and_the_known_notes(caplog):
    quiet_third_party()
    quiet_third_party()  # a second call adds nothing twice
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    assert logging.getLogger("lightning.pytorch").level == logging.WARNING  # such lines stay off the console
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("The dataloader, train_dataloader, does not have many workers which may be a bottleneck.", UserWarning, stacklevel=1)
    assert caught == []
    assert warnings.formatwarning("Learning rate is high", UserWarning, "/site-packages/x.py", 3) == "warning: Learning rate is high\n"
