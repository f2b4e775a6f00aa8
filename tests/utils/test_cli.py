import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from autoencoder.utils.cli import closest, command, edits, overridden, quiet_third_party


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


def test_each_command_is_a_console_script_with_hydras_tab_completion(tmp_path):
    scripts = Path(sys.executable).parent
    shown = subprocess.run([scripts / "autoencoder-shapes", "model.latent_dim=2"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "O = floor((14 + 2*1 - 3)/2) + 1 = 7" in shown.stdout, shown.stderr[-2000:]
    line = "autoencoder-train model.lat"
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
    query = subprocess.run([scripts / "autoencoder-train", "-sc", "query=bash"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert query.stdout.split() == ["model.latent_dim="], query.stderr[-2000:]
    install = subprocess.run([scripts / "autoencoder-train", "-sc", "install=bash"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "complete -o nospace -o default -F hydra_bash_completion autoencoder-train" in install.stdout


def test_edits_count_a_swap_of_neighbours_as_one():
    assert [edits("nosie", "noise"), edits("noise", "noise"), edits("", "abc"), edits("ab", "ba"), edits("kitten", "sitting")] == [1, 0, 3, 1, 3]


def test_the_closest_keys_are_at_the_unknown_keys_depth():
    known = ["noise", "model", "module", "denoising", "denoising.noise", "denoising.tuning_images", "variant.beta", "variant.sigma"]
    assert closest("nosie", known) == ["noise"]
    assert closest("denoising.nosie", known) == ["denoising.noise"]  # not the node `denoising`
    assert closest("variant.bta", known) == ["variant.beta"]
    assert closest("modle", known) == ["model", "module"]  # a swap and an insertion: one edit each
    assert closest("trainer.max_epoch", ["trainer.max_epochs", "trainer.min_epochs", "trainer.max_steps"]) == ["trainer.max_epochs"]
    assert closest("zzz", known) == []


@pytest.mark.parametrize(
    ("signum", "inherited", "code", "line"),
    [
        (signal.SIGINT, signal.default_int_handler, 130, "interrupted: Ctrl-C\n"),
        (signal.SIGINT, signal.SIG_IGN, 130, "interrupted: Ctrl-C\n"),  # a command started with `&` inherits SIGINT ignored
        (signal.SIGTERM, signal.SIG_DFL, 143, "interrupted: SIGTERM\n"),
    ],
)
def test_a_signal_outside_a_training_is_one_line_and_exit_code_128_plus_it(capsys, signum, inherited, code, line):
    previous = signal.signal(signum, inherited)
    try:
        with pytest.raises(SystemExit) as stopped, command():
            os.kill(os.getpid(), signum)  # its handler runs as soon as os.kill returns
            pytest.fail("the signal did not stop the command")
        assert stopped.value.code == code and capsys.readouterr().err == line
        assert signal.getsignal(signum) == inherited  # the handlers the command found come back
    finally:
        signal.signal(signum, previous)
