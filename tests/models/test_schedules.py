"""Each conf/scheduler option, built as a run builds it (LitAutoencoder.configure_optimizers), against
the learning rates worked out by hand."""

import math
from types import SimpleNamespace

import lightning as L
import pytest
from hydra.utils import instantiate
from torch.optim.lr_scheduler import ReduceLROnPlateau

from autoencoder.training.run import train
from autoencoder.utils.cli import load_config
from tests.training.test_run import read_events


def scheduled(scheduler: str, steps: int, *overrides: str) -> tuple:
    """The optimizer and the Lightning scheduler config of a run with `steps` optimizer steps."""
    cfg = load_config("config", [f"scheduler={scheduler}", "model=mlp", *overrides])
    lit = instantiate(cfg.module)
    lit.trainer = SimpleNamespace(estimated_stepping_batches=steps)  # what the Trainer works out from max_epochs and batches
    configured = lit.configure_optimizers()
    return configured["optimizer"], configured["lr_scheduler"]


def rates(optimizer, scheduler, steps: int) -> list[float]:
    """The learning rate used at each of `steps` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_the_constant_rate_experiment_is_the_recipe_from_before_the_schedules():
    cfg = load_config("config", ["model=mlp", "experiment=constant_rate"])
    assert cfg.trainer.max_epochs == 15 and cfg.data.batch_size == 128
    lit = instantiate(cfg.module)
    assert lit.configure_optimizers().param_groups[0]["lr"] == 1e-3  # the optimizer alone: no schedule


def onecycle(step: int, steps: int, peak: float = 3e-3) -> float:
    """The one-cycle rate of conf/scheduler/onecycle.yaml at `step` of `steps`, worked out by hand:
    cosine from peak/25 up to the peak at step 0.25 * steps - 1, then cosine down to peak/25/1e4."""
    start, end, rise = peak / 25, peak / 25 / 1e4, 0.25 * steps - 1
    if step <= rise:
        return peak + (start - peak) / 2 * (1 + math.cos(math.pi * step / rise))
    return end + (peak - end) / 2 * (1 + math.cos(math.pi * (step - rise) / (steps - 1 - rise)))


@pytest.mark.parametrize("steps", [20, 40])
def test_onecycle_peaks_a_quarter_in_and_ends_near_zero(steps):
    optimizer, config = scheduled("onecycle", steps, "optimizer.lr=3e-3")  # the peak
    assert config["interval"] == "step" and config["frequency"] == 1
    lr = rates(optimizer, config["scheduler"], steps)
    assert lr == pytest.approx([onecycle(step, steps) for step in range(steps)], rel=1e-6)
    peak_step = round(0.25 * steps - 1)  # a whole step: 4 of 20, 9 of 40
    assert max(lr) == pytest.approx(3e-3) and lr.index(max(lr)) == peak_step
    assert lr[0] == pytest.approx(3e-3 / 25) and lr[-1] == pytest.approx(3e-3 / 25 / 1e4)


def test_cosine_warms_up_linearly_then_anneals_to_eta_min():
    steps = 100
    optimizer, config = scheduled("cosine", steps, "optimizer.lr=1e-3", "scheduler.warmup=0.1", "scheduler.eta_min=1e-5")
    lr = rates(optimizer, config["scheduler"], steps + 1)
    base, warmup = 1e-3, 10
    for step in range(warmup):
        assert lr[step] == pytest.approx(base * (0.01 + 0.99 * step / warmup), rel=1e-6), step
    for step in range(warmup, steps + 1):
        expected = 1e-5 + (base - 1e-5) / 2 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        assert lr[step] == pytest.approx(expected, rel=1e-6), step
    assert lr[warmup] == pytest.approx(base) and lr[steps] == pytest.approx(1e-5)


def test_plateau_halves_the_rate_after_patience_flat_validations():
    optimizer, config = scheduled("plateau", 0, "optimizer.lr=1e-3")
    scheduler = config["scheduler"]
    assert isinstance(scheduler, ReduceLROnPlateau) and config["interval"] == "epoch" and config["monitor"] == "val/loss"
    seen = []
    for val_loss in (1.0, 0.5, 0.5, 0.5, 0.5, 0.5):  # improves once, then flat
        scheduler.step(val_loss)
        seen.append(optimizer.param_groups[0]["lr"])
    # patience 2: the third flat validation in a row is one too many
    assert seen == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4])


class Rates(L.Callback):
    """The learning rate of every training step of a run, by global step."""

    def __init__(self) -> None:
        self.by_step: dict[int, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.by_step[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


# 2 epochs of 3 batches, the rate logged every step; every epoch's checkpoint kept, so that a run can resume from the first.
RUN = ("trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1", "early_stopping=none", "trainer.log_every_n_steps=1")


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["none", "onecycle", "cosine", "plateau"])
def test_a_run_with_each_schedule_logs_its_rate(make_cfg, tmp_path, scheduler):
    rates = Rates()
    metrics = train(make_cfg(f"scheduler={scheduler}", "optimizer.lr=3e-3", *RUN), callbacks=[rates])
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert sorted(rates.by_step) == list(range(6))
    # LearningRateMonitor, from the callbacks group, logs the rate the optimizer used (TensorBoard: after the losses)
    logged = {e.step: e.value for e in read_events(tmp_path / "run" / "tensorboard").Scalars("vitals/lr-Adam")}
    assert logged and all(value == pytest.approx(rates.by_step[step]) for step, value in logged.items() if step in rates.by_step)
    if scheduler == "onecycle":  # the schedule's length follows the run: 2 epochs of 3 batches
        assert list(rates.by_step.values()) == pytest.approx([onecycle(step, 6) for step in range(6)], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_a_resumed_run_goes_on_with_the_same_rates(make_cfg, tmp_path, scheduler):
    whole, resumed = Rates(), Rates()
    train(make_cfg(f"scheduler={scheduler}", *RUN, output_dir=tmp_path / "whole"), callbacks=[whole])
    first_epoch = next((tmp_path / "whole" / "checkpoints").glob("*epoch001*.ckpt"))
    train(make_cfg(f"scheduler={scheduler}", *RUN, f"ckpt_path={first_epoch}", output_dir=tmp_path / "resumed"), callbacks=[resumed])
    assert sorted(resumed.by_step) == [3, 4, 5]
    assert resumed.by_step == {step: whole.by_step[step] for step in (3, 4, 5)}
