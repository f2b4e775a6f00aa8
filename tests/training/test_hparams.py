"""TensorBoard as a user reads it: the HParams tab's columns in the order and with the values the tab
gets them (TensorBoard's own hparams backend reads the run's event files), the runs' names in a
sweep, and the scalar tags Time Series sorts its cards by."""

import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

from autoencoder.config.validation import validate
from autoencoder.runs.record import RunRecord, Status
from autoencoder.training.hparams import PATHS, TRAINER, Metric, hparam_columns, metric_columns
from autoencoder.training.launch import launch
from autoencoder.training.run import train
from autoencoder.utils.cli import load_config
from autoencoder.workflows.jobs import train_and_evaluate
from tests.conftest import FAST
from tests.sweeps.test_sweeps import multirun
from tests.training.test_run import read_events
from tests.workflows.test_evaluate_in_train import HEADLINE, QUICK

GROUPS_SHOWN = ["model", "variant", "corruption", "data", "optimizer", "scheduler", "trainer", "early_stopping"]


def launched(*overrides: str, output_dir: Path | str = "outputs/test"):
    """The config of `python -m autoencoder.train <overrides>`, with the `launch` its job gets."""
    cfg = load_config("config", list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.launch = launch(cfg.hydra)
        del cfg["hydra"]
        cfg.output_dir = str(output_dir)
    validate(cfg)  # as train() does: the settings left to their classes' defaults are filled in
    return cfg


def hparams_tab(logdir: Path) -> tuple[api_pb2.Experiment, dict[str, api_pb2.SessionGroup]]:
    """The experiment (columns, in the tab's order) and each run's row, as TensorBoard serves them."""
    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(logdir))
    runs.Reload()
    tensorboard = base_plugin.TBContext(data_provider=data_provider.MultiplexerDataProvider(runs, str(logdir)), logdir=str(logdir), multiplexer=runs)
    hparams, request = backend_context.Context(tensorboard), context.RequestContext()
    experiment = get_experiment.Handler(request, hparams, "", api_pb2.GetExperimentRequest()).run()
    rows = list_session_groups.Handler(
        request, hparams, "", api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=api_pb2.Status.values())
    ).run()
    return experiment, {group.name: group for group in rows.session_groups}


def test_a_default_run_shows_its_config_groups_first_then_a_few_dozen_settings():
    shown = hparam_columns(launched(), Status.COMPLETED)
    labels = [c.label for c in shown]
    assert labels[: len(GROUPS_SHOWN)] == GROUPS_SHOWN and [c.value for c in shown[:3]] == ["conv", "ae", "gaussian"]
    assert not any(c.leads for c in shown) and labels[-1] == "status"
    assert len(shown) + len(metric_columns(RunRecord(best_val_loss=0.1, test_loss=0.1))) <= 40
    assert {"noise", "model.latent_dim", "optimizer.lr", "data.batch_size", "trainer.max_epochs", "trainer.precision"} <= set(labels)
    assert not [label for label in labels if "_target_" in label or "_partial_" in label or any(fnmatchcase(label, p) for p in PATHS)]
    assert {label.removeprefix("trainer.") for label in labels if label.startswith("trainer.")} <= set(TRAINER)
    assert not [label for label in labels if label.split(".")[0] in ("module", "callbacks", "logger", "evaluation", "interrupts", "launch")]
    assert len(set(labels)) == len(labels) and "corruption.noise" not in labels  # it repeats noise


def test_a_prior_shows_as_its_group_and_its_own_settings_once():
    shown = {c.label: c for c in hparam_columns(launched("variant=vae", "prior=vamp", "prior.pseudo_inputs=20"), Status.COMPLETED)}
    assert shown["prior"].value == "vamp" and shown["prior.pseudo_inputs"].value == 20
    assert not [label for label in shown if label.startswith("variant.prior") or label == "prior.input_shape"]  # repeats of the prior and the model


def test_keys_set_on_the_command_line_lead_and_paths_stay_out():
    cfg = launched("model.latent_dim=2", "noise=0.3", "data.data_dir=/data", "optimizer=adamw", "trainer.limit_val_batches=5")
    shown = hparam_columns(cfg, Status.COMPLETED)
    leading = [c.label for c in shown if c.leads]
    assert leading == ["optimizer", "noise", "model.latent_dim", "trainer.limit_val_batches"]  # TensorBoard's order: the names' ranks
    assert [c.label for c in shown[len(leading) : len(leading) + 3]] == ["model", "variant", "corruption"]
    assert {c.label: c.value for c in shown}["model.latent_dim"] == 2 and "data.data_dir" not in {c.label for c in shown}


def test_the_metric_columns_are_the_headline_figures():
    record = RunRecord(best_val_loss=0.1, test_loss=0.2, evaluation={"test_mse": 0.03, "knn_accuracy": 0.9})
    assert metric_columns(record) == [
        Metric("val/loss_best", "best val loss", 0.1),
        Metric("test/loss", "test loss"),  # the run's own tag
        Metric("test/mse", "test mse", 0.03),
        Metric("test/knn_accuracy", "knn accuracy", 0.9),
    ]
    assert metric_columns(RunRecord(status=Status.PRUNED)) == []


def test_the_hparams_tab_and_the_scalars_of_a_run(tmp_path, fake_mnist):
    cfg = launched(f"data.data_dir={fake_mnist}", *FAST, "model.latent_dim=2", "noise=0.3", output_dir=tmp_path / "run")
    metrics = train(cfg)
    experiment, rows = hparams_tab(tmp_path)
    assert list(rows) == ["run/tensorboard"]  # a single run keeps its folder's name
    infos = list(experiment.hparam_infos)
    leading = [h.display_name for h in infos if h.differs]
    assert leading[:2] == ["noise", "model.latent_dim"] and set(leading) == {o.split("=")[0] for o in [*FAST, "model.latent_dim", "noise"]}
    assert [h.display_name for h in infos[len(leading) : len(leading) + len(GROUPS_SHOWN)]] == GROUPS_SHOWN
    assert infos[-1].display_name == "status" and len(infos) <= 45
    assert [m.display_name for m in experiment.metric_infos] == ["best val loss", "test loss"]
    row = rows["run/tensorboard"]
    values = {m.name.tag: m.value for m in row.metric_values}
    assert values == pytest.approx({"val/loss_best": metrics["best_val_loss"], "test/loss": metrics["test_loss"]})
    names = {h.display_name: h.name for h in infos}
    assert row.hparams[names["model.latent_dim"]].number_value == 2 and row.hparams[names["model"]].string_value == "conv"
    assert row.hparams[names["status"]].string_value == "completed" and row.sessions[0].status == api_pb2.STATUS_SUCCESS

    tags = read_events(tmp_path / "run" / "tensorboard").Tags()["scalars"]
    assert {"train/loss_epoch", "val/loss", "val/loss_best", "test/loss", "vitals/speed/epochs_per_s"} <= set(tags)
    assert "epoch" not in tags and {tag.split("/")[0] for tag in tags} == {"train", "val", "test", "vitals"}  # Time Series: test, train, val, vitals
    assert OmegaConf.load(tmp_path / "run" / "config.yaml").launch.groups.model == "conv"  # kept for a resume


@pytest.mark.slow  # the evaluation
def test_the_evaluation_s_headline_figures_are_metric_columns(tmp_path, fake_mnist):
    cfg = launched(f"data.data_dir={fake_mnist}", *FAST, "evaluate=true", *(o for o in QUICK if not o.startswith("logger=")), output_dir=tmp_path / "run")
    metrics = train_and_evaluate(cfg)
    experiment, rows = hparams_tab(tmp_path / "run")
    tags = [m.name.tag for m in experiment.metric_infos]
    assert tags[:2] == ["val/loss_best", "test/loss"] and len(tags) == 2 + len(HEADLINE)
    values = {m.name.tag: m.value for m in rows["tensorboard"].metric_values}
    figures = {f"test/{name.removeprefix('test_')}": value for name, value in metrics["evaluation"].items()}
    assert values == pytest.approx({"val/loss_best": metrics["best_val_loss"], "test/loss": metrics["test_loss"]} | figures)


@pytest.mark.slow
def test_a_sweep_names_its_runs_by_the_swept_overrides(tmp_path, fake_mnist):
    sweep, jobs = multirun(tmp_path, fake_mnist, "model.latent_dim=2,4")
    experiment, rows = hparams_tab(sweep)
    assert sorted(rows) == ["model.latent_dim=2", "model.latent_dim=4"]  # the fixed overrides (data, trainer) do not name them
    assert [(h.display_name, h.differs) for h in experiment.hparam_infos[:2]] == [("model.latent_dim", True), ("model", False)]
    for job in jobs.values():
        config = OmegaConf.load(sweep / job["job"] / "config.yaml")
        assert config.launch.swept == ["model.latent_dim"] and config.logger.name == f"model.latent_dim={config.model.latent_dim}"
        assert config.logger.save_dir == str(sweep) and not list((sweep / job["job"]).glob("**/events.out.tfevents.*"))
        values = {m.name.tag: m.value for m in rows[config.logger.name].metric_values}
        assert values["test/loss"] == pytest.approx(json.loads((sweep / job["job"] / "metrics.json").read_text())["test_loss"])
