from types import SimpleNamespace

import optuna
import pytest
import torch

from autoencoder.sweeps.pruning import OptunaPruning
from autoencoder.utils.errors import UserError


def trainer(epoch: int, val_loss: float | None, sanity_checking: bool = False) -> SimpleNamespace:
    """What the callback reads of Lightning's Trainer at the end of a validation (one process)."""
    metrics = {} if val_loss is None else {"val/loss": torch.tensor(val_loss)}
    return SimpleNamespace(
        current_epoch=epoch, callback_metrics=metrics, sanity_checking=sanity_checking, is_global_zero=True, strategy=SimpleNamespace(broadcast=lambda x: x)
    )


@pytest.fixture
def study_and_trial(tmp_path):
    """A study with one finished trial (val loss 0.1 after each of two epochs) and a running one."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s")
    distribution = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=distribution, value=0.1, intermediate_values={0: 0.1, 1: 0.1}))
    trial = study.ask(distribution)
    return storage, study, trial


def test_reports_every_epoch_and_stops_a_trial_worse_than_the_median(study_and_trial):
    storage, study, good = study_and_trial
    bad = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    callbacks = {trial: OptunaPruning(storage, "s", trial._trial_id, pruner=pruner) for trial in (good, bad)}
    for callback in callbacks.values():
        callback.setup(trainer(0, None), None, "fit")
        callback.on_validation_end(trainer(0, 9.0, sanity_checking=True), None)  # the sanity check is not an epoch
    # The median is over finished trials: 0.1 after each epoch.
    callbacks[good].on_validation_end(trainer(0, 0.05), None)
    callbacks[good].on_validation_end(trainer(1, 0.04), None)
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        callbacks[bad].on_validation_end(trainer(0, 0.2), None)
    assert study.trials[good.number].intermediate_values == pytest.approx({0: 0.05, 1: 0.04})
    assert study.trials[bad.number].intermediate_values == pytest.approx({0: 0.2})


def test_the_search_pruner_decides_not_optunas_default(study_and_trial):
    storage, study, trial = study_and_trial
    callback = OptunaPruning(storage, "s", trial._trial_id, pruner=optuna.pruners.NopPruner())
    callback.setup(trainer(0, None), None, "fit")
    for epoch in range(2):
        callback.on_validation_end(trainer(epoch, 0.5), None)
    assert study.trials[trial.number].intermediate_values == {0: 0.5, 1: 0.5}


def test_refusals(study_and_trial):
    storage, _, trial = study_and_trial
    with pytest.raises(UserError, match="hparams_search=optuna runs a search: start it with -m"):
        OptunaPruning(storage, "s", None, pruner=optuna.pruners.NopPruner())
    callback = OptunaPruning(storage, "s", trial._trial_id, pruner=optuna.pruners.NopPruner(), monitor="val/acc")
    callback.setup(trainer(0, None), None, "fit")
    with pytest.raises(UserError, match="monitors val/acc, which this run does not log"):
        callback.on_validation_end(trainer(0, 0.5), None)
