import inspect

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from autoencoder import CONFIG_DIR
from autoencoder.config.validation import RULES, settings, validate
from autoencoder.evaluation import classifier, encode, evaluate, sampling
from autoencoder.utils.cli import load_config
from autoencoder.utils.errors import UserError
from autoencoder.workflows import anomaly, code_prior, study
from benchmarks import suite, time_to_quality

ENTRY_POINTS = {
    "config": [],
    "evaluate": ["ckpt_path=x.ckpt"],
    "encode": ["ckpt_path=x.ckpt"],
    "sample": ["ckpt_path=x.ckpt"],
    "code_prior": ["ckpt_path=x.ckpt"],
    "anomaly": [],
    "study": [],
    "bench": [],
    "shapes": [],
    "time_to_quality": [],
    "classifier": [],
}
# Each command's rules, kept beside its function.
COMMAND_RULES = {
    "config": RULES,
    "evaluate": evaluate.RULES,
    "encode": encode.RULES,
    "sample": sampling.RULES,
    "code_prior": code_prior.RULES,
    "anomaly": anomaly.ANOMALY_RULES,
    "study": study.STUDY_RULES,
    "bench": suite.RULES,
    "shapes": RULES,
    "time_to_quality": time_to_quality.RULES,
    "classifier": classifier.RULES,
}
GROUP_OPTIONS = [
    f"{group.name}={option.stem}"
    for group in CONFIG_DIR.iterdir()
    if group.is_dir() and group.name not in ("hydra", "experiment", "hparams_search")
    for option in group.glob("*.yaml")
]
# The choices an option needs beside it: a prior is a setting of the VAE family.
COMPANIONS = {"prior": ["variant=vae"]}


def composed(name: str = "config", *overrides: str):
    cfg = load_config(name, [*ENTRY_POINTS.get(name, []), *overrides])
    with open_dict(cfg):
        cfg.output_dir = "outputs/test"  # Hydra's ${hydra:...} is not set outside a run
    return cfg


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_key_of_every_command_has_a_rule_and_the_defaults_pass(name):
    validate(composed(name), COMMAND_RULES[name])  # a key that no class or rule knows is refused


def test_a_key_means_one_thing_per_command():
    # `steps` is sample's number of interpolation steps; in training it is no setting at all
    assert sampling.RULES["steps"].accepts(2) and "steps" not in RULES
    with pytest.raises(UserError, match=r"^steps must be an integer >= 2, got 1$"):
        validate(composed("sample", "steps=1"), sampling.RULES)


@pytest.mark.parametrize("option", GROUP_OPTIONS)
def test_every_key_of_every_group_option_has_a_rule(option):
    validate(composed("config", *COMPANIONS.get(option.split("=")[0], []), option))


BAD = [
    (["optimizer.lr=-0.1"], "optimizer.lr must be a number > 0, got -0.1"),
    (["optimizer.lr=abc"], "optimizer.lr must be a number > 0, got 'abc'"),
    (["seed=abc"], r"seed must be an integer in \[0, 4294967295\], got 'abc'"),
    (["seed=-1"], r"seed must be an integer in \[0, 4294967295\], got -1"),
    (["early_stopping.patience=-1"], "early_stopping.patience must be an integer >= 0, got -1"),
    (["model.latent_dim=0"], "model.latent_dim must be an integer >= 1, got 0"),
    (["model.latent_dim=abc"], "model.latent_dim must be an integer >= 1, got 'abc'"),
    (["model=mlp", "model.latent_dim=2.5"], "model.latent_dim must be an integer >= 1, got 2.5"),
    (["model.latent_dim=true"], "model.latent_dim must be an integer >= 1, got True"),
    (["model.channels=[32,0]"], r"model.channels must be a non-empty list of integers >= 1, got \[32, 0\]"),
    (["model.input_shape=[1,28]"], r"model.input_shape must be 3 integers >= 1, got \[1, 28\]"),
    (["noise=-0.1"], "noise must be a number >= 0, got -0.1"),
    (["noise=nan"], "noise must be a number >= 0, got nan"),
    (["corruption=masking", "noise=1.5"], r"noise must be a number in \[0, 1\] for the Masking corruption, got 1.5"),
    (["corruption=salt_pepper", "noise=abc"], "noise must be a number >= 0, got 'abc'"),
    (
        ["corruption=chain", "corruption.steps=[{_target_:autoencoder.models.corruption.Flip},{_target_:autoencoder.models.corruption.Masking,noise:1.5}]"],
        r"noise must be a number in \[0, 1\] for the Masking corruption, got 1.5",
    ),
    (
        ["corruption=rotation", "corruption.degrees=[0,45]"],
        r"corruption.degrees must be a non-empty list of distinct angles from 0, 90, 180, 270, got \[0, 45\]",
    ),
    (
        ["corruption=flip", "corruption.flips=[diagonal]"],
        r"corruption.flips must be a non-empty list of names from none, horizontal, vertical, both, got \['diagonal'\]",
    ),
    (["corruption=translation", "corruption.shift=0"], "corruption.shift must be an integer >= 1, got 0"),
    (["module.transform_head_weight=-1"], "module.transform_head_weight must be a number >= 0, got -1"),
    (["loss=l1"], "loss must be one of mse, bce, got 'l1'"),
    (["compile=fast"], "compile must be one of False, True, default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs, got 'fast'"),
    (["data.batch_size=0"], "data.batch_size must be an integer >= 1, got 0"),
    (["data.val_size=-1"], r"data.val_size must be an integer >= 1 or a fraction in \(0, 1\) of the training images, got -1"),
    (["data.train_size=1.5"], "data.train_size must be an integer >= 1 or null, got 1.5"),
    (["data.classes=[]"], r"data.classes must be a non-empty list of distinct class names or labels \(integers >= 0\) or null, got \[\]"),
    (["data.classes=[2,2]"], r"data.classes must be a non-empty list of distinct class names or labels \(integers >= 0\) or null, got \[2, 2\]"),
    (["data.classes=[-1]"], r"data.classes must be .*, got \[-1\]"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs must be an integer >= -1 or null, got 'abc'"),
    (
        ["trainer.limit_train_batches=-2"],
        r"trainer.limit_train_batches must be a number of batches \(integer >= 0\) or a fraction \(0.0 to 1.0\) or null, got -2",
    ),
    (["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches must be .*, got 1.5"),
    (["trainer.precision=fp8"], "trainer.precision must be one of 32-true, bf16-mixed, 16-mixed, got 'fp8'"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val must be a number >= 0 or null, got -1"),
    (["callbacks.model_checkpoint.save_top_k=-2"], "callbacks.model_checkpoint.save_top_k must be an integer >= -1, got -2"),
    (["threads=0"], "threads must be an integer >= 1 or null, got 0"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_training_values_name_the_key_the_value_and_what_is_allowed(overrides, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        validate(composed("config", *overrides))


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("anomaly", ["classes=[-1]"], r"classes must be a non-empty list of distinct class names or labels \(integers >= 0\) or null, got \[-1\]"),
        ("anomaly", ["seeds=[0,0]"], r"seeds must be a non-empty list of distinct integers in \[0, 4294967295\], got \[0, 0\]"),
        (
            "evaluate",
            ["denoising.corruptions=[blur]"],
            r"denoising.corruptions must be a non-empty list of names from gaussian, masking, salt_pepper, got \['blur'\]",
        ),
        ("evaluate", ["probe.knn_k=0"], "probe.knn_k must be an integer >= 1, got 0"),
        ("encode", ["split=validation"], "split must be one of train, val, test, got 'validation'"),
        ("bench", ["epochs=1"], "epochs must be an integer >= 2, got 1"),
    ],
)
def test_bad_values_of_the_other_commands(name, overrides, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        validate(composed(name, *overrides), COMMAND_RULES[name])


def test_fp16_needs_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="trainer.precision=16-mixed needs a GPU"):
        validate(composed("config", "trainer.precision=16-mixed"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    validate(composed("config", "trainer.precision=16-mixed"))


def test_one_is_not_taken_for_true():
    with pytest.raises(UserError, match="channels_last must be true or false, got 1"):
        validate(composed("config", "channels_last=1"))


def test_a_nodes_settings_their_rules_and_defaults_are_its_class_signature():
    taken, takes_more = settings("autoencoder.models.variants.Variational")
    assert not takes_more and {name: s.default for name, s in taken.items()} == {"beta": 1.0, "warmup_epochs": 0, "sigma": 0.1, "prior": None}
    assert taken["sigma"].rule.allowed == "a number > 0"  # its Annotated rule
    assert taken["prior"].rule.allowed == "null"  # a node of its own otherwise (conf/prior/), checked by its class's settings
    cfg = composed("config", "variant=vae", "variant.beta=2")
    validate(cfg)
    assert (cfg.variant.beta, cfg.variant.sigma) == (2, 0.1)  # the run's config says all it ran with


def test_a_subclass_passing_its_settings_on_takes_its_parents_too():
    taken, takes_more = settings("autoencoder.data.mnist.MNIST")
    assert {"data_dir", "download", "batch_size", "val_size", "binarize"} <= set(taken) and not takes_more
    assert settings("lightning.pytorch.loggers.TensorBoardLogger")[1]  # **kwargs no class names: any key goes


def test_the_trainers_settings_are_lightnings_own_arguments():
    from lightning.pytorch import Trainer

    taken, _ = settings("lightning.pytorch.Trainer")
    assert set(taken) == set(inspect.signature(Trainer).parameters)
    with pytest.raises(UserError, match=r"^trainer.detect_anomaly must be true or false, got 'sometimes'$"):
        validate(composed("config", "trainer.detect_anomaly=sometimes"))  # the type hint's rule


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["variant=vae", "variant.bta=2"], r"unknown key 'variant.bta' \(not a setting of Variational\): did you mean variant.beta\?"),
        (["variant=vae", "variant.zzz=2"], r"unknown key 'variant.zzz' \(not a setting of Variational\): its settings: beta, warmup_epochs, sigma, prior"),
        (["trainer.max_epoch=2"], r"unknown key 'trainer.max_epoch' \(not a setting of Trainer\): did you mean trainer.max_epochs\?"),
        (["interrupts.signal=[]"], r"unknown key 'interrupts.signal': did you mean interrupts.signals\?"),
    ],
)
def test_a_key_no_class_or_rule_knows_is_refused_with_the_closest(overrides, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        validate(composed("config", *overrides))


def _written(node, path=""):
    """(dotted key, value) of the settings a YAML file writes out, not its links (`${...}`)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _written(value, f"{path}{key}.")
        elif not str(key).startswith("_") and key != "defaults" and not (isinstance(value, str) and "${" in value):
            yield f"{path}{key}", value


@pytest.mark.parametrize("option", GROUP_OPTIONS)
def test_a_group_option_writes_no_default_again(option):
    """A value a YAML writes differs from what its node would have without it: its class's
    default, or the value of the option it extends (trainer=ddp extends trainer=default)."""
    group, name = option.split("=")
    path = CONFIG_DIR / group / f"{name}.yaml"
    text, own = path.read_text(), OmegaConf.to_container(OmegaConf.load(path))
    cfg = composed("config", option)
    parents = [composed("config", f"{group}={parent}") for parent in own.get("defaults", []) if isinstance(parent, str) and parent != "_self_"]
    for key, value in _written(own):
        node_path, _, setting = f"{group}.{key}".rpartition(".")
        target = OmegaConf.select(cfg, f"{node_path}._target_")
        default = settings(target)[0].get(setting) if target else None
        inherited = [OmegaConf.select(parent, f"{group}.{key}", default=default.default if default else None) for parent in parents]
        without = inherited[-1] if inherited else default.default if default else None
        linked = f".{setting}}}" in text  # a key another key links to stays
        assert without is None or without != value or linked, f"{path.name} writes {key}: {value!r}, which it has without"
