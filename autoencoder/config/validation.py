"""Every value a user can set, checked before anything is built.

A rule set maps each config key (a dotted path; `*` stands for any one name) to its type and range.
`RULES` is the training config's (train, shapes, and the base of anomaly's); the other commands
keep their own beside their function (evaluate's `RULES` in autoencoder.evaluation.evaluate, ...),
made of `RUN` and `DATA` here and their own keys, so that a key such as `seed` or `steps` means
one thing per command. `validate(cfg, rules)` walks every key of a composed config and stops at the
first bad value with one line naming the key, the value and what is allowed. A few checks need two
keys at once (`CROSS_CHECKS`). Keys that only repeat another (`${...}` interpolations) are checked
where they point, and keys a user adds with `+` (a callback's arguments, say) are left to the class
they configure.
"""

import fnmatch
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from autoencoder import CONFIG_DIR
from autoencoder.utils.errors import UserError
from autoencoder.utils.hardware import PRECISIONS, uses_gpu


@dataclass(frozen=True)
class Rule:
    accepts: Callable[[object], bool]
    allowed: str  # what is allowed, as the error line says it


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _or_null(rule: Rule, null: bool) -> Rule:
    return Rule(lambda v: v is None or rule.accepts(v), f"{rule.allowed} or null") if null else rule


def integer(low: int | None = None, high: int | None = None, null: bool = False) -> Rule:
    if high is not None:
        allowed = f"an integer in [{low}, {high}]"
    else:
        allowed = "an integer" if low is None else f"an integer >= {low}"
    ok = lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high)  # noqa: E731
    return _or_null(Rule(ok, allowed), null)


def number(low: float | None = None, high: float | None = None, above: float | None = None, null: bool = False) -> Rule:
    if above is not None:
        allowed = f"a number > {above:g}"
    elif high is not None:
        allowed = f"a number in [{low:g}, {high:g}]"
    else:
        allowed = "a number" if low is None else f"a number >= {low:g}"
    ok = lambda v: _is_number(v) and (low is None or v >= low) and (high is None or v <= high) and (above is None or v > above)  # noqa: E731
    return _or_null(Rule(ok, allowed), null)


def boolean(null: bool = False) -> Rule:
    return _or_null(Rule(lambda v: isinstance(v, bool), "true or false"), null)


def text(null: bool = False) -> Rule:
    return _or_null(Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string"), null)


def one_of(*options: object) -> Rule:
    # `True == 1` in Python: compare types too, so that 1 is not taken for true.
    return Rule(lambda v: any(type(v) is type(o) and v == o for o in options), "one of " + ", ".join(str(o) for o in options))


def integers(low: int = 0, high: int | None = None, empty: bool = False, distinct: bool = False, length: int | None = None, null: bool = False) -> Rule:
    def ok(v: object) -> bool:
        if not isinstance(v, list) or not all(_is_int(x) and x >= low and (high is None or x <= high) for x in v):
            return False
        return (empty or len(v) > 0) and (not distinct or len(set(v)) == len(v)) and (length is None or len(v) == length)

    what = f"{length} integers" if length else f"a{'' if empty else ' non-empty'} list of{' distinct' if distinct else ''} integers"
    allowed = f"{what} {'>= ' + str(low) if high is None else f'in [{low}, {high}]'}"
    return _or_null(Rule(ok, allowed), null)


def strings(empty: bool = False, options: tuple[str, ...] | None = None) -> Rule:
    ok = lambda v: isinstance(v, list) and (empty or len(v) > 0) and all(isinstance(x, str) and (options is None or x in options) for x in v)  # noqa: E731
    return Rule(ok, f"a{'' if empty else ' non-empty'} list of {'names from ' + ', '.join(options) if options else 'strings'}")


def numbers(low: float = 0) -> Rule:
    return Rule(lambda v: isinstance(v, list) and len(v) > 0 and all(_is_number(x) and x >= low for x in v), f"a non-empty list of numbers >= {low:g}")


def batches_or_fraction(null: bool = True) -> Rule:
    """Lightning's limit_*_batches and overfit_batches: a number of batches or a fraction of them."""
    ok = lambda v: (_is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1)  # noqa: E731
    return _or_null(Rule(ok, "a number of batches (integer >= 0) or a fraction (0.0 to 1.0)"), null)


def anything_of(*rules: Rule) -> Rule:
    return Rule(lambda v: any(r.accepts(v) for r in rules), " or ".join(r.allowed for r in rules))


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP")
CLASSES = Rule(
    lambda v: (
        v is None or (isinstance(v, list) and len(v) > 0 and len(set(v)) == len(v) and all((_is_int(c) and c >= 0) or (isinstance(c, str) and c) for c in v))
    ),
    "a non-empty list of distinct class names or labels (integers >= 0) or null",
)
FRACTION = Rule(lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)")
COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# The corruptions with a noise level, which the denoising measure sweeps (not the transformations).
CORRUPTIONS = tuple(sorted(p.stem for p in (CONFIG_DIR / "corruption").glob("*.yaml") if "noise" in OmegaConf.load(p)))
# The transformation corruptions' settings (autoencoder.models.corruption).
QUARTER_TURNS = Rule(
    lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and len(set(v)) == len(v) and all(_is_int(d) and d in (0, 90, 180, 270) for d in v),
    "a non-empty list of distinct angles from 0, 90, 180, 270",
)
FLIPS = ("none", "horizontal", "vertical", "both")
STEPS = Rule(
    lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(s, dict) and "_target_" in s for s in v),
    "a non-empty list of corruption configs, each with a _target_",
)

# The evaluation's settings (conf/evaluation/default.yaml): evaluate's top-level keys, and a training
# run's under `evaluation` (evaluate=true).
EVALUATION: dict[str, Rule] = {
    "batch_size": integer(1),
    "seed": integer(0, 2**32 - 1),
    "denoising.corruptions": strings(options=CORRUPTIONS),
    "denoising.noise": numbers(0),
    "denoising.tuning_images": integer(1),
    "latent.tsne": boolean(),
    "latent.tsne_points": integer(2),
    "latent.projector_points": integer(1),
    "latent.manifold_steps": integer(2),
    "probe.train_size": integer(1, null=True),
    "probe.knn_k": integer(1),
    "likelihood.samples": integer(1),
    "likelihood.decodes": integer(1),
    "anomaly.knn_k": integer(1),
}

# Every command's: where it writes, and its progress lines where stdout is not a terminal (conf/progress/).
RUN: dict[str, Rule] = {
    "output_dir": text(),
    "runs_in": text(),
    "progress.every_seconds": number(above=0),
    "progress.every_fraction": Rule(lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
}
# The data config's (conf/data/), for training and for the commands that read a checkpoint's run.
DATA: dict[str, Rule] = {
    "data.data_dir": text(null=True),
    "data.batch_size": integer(1),
    "data.val_size": anything_of(integer(1), Rule(FRACTION.accepts, "a fraction in (0, 1) of the training images")),
    "data.train_size": integer(1, null=True),
    "data.split_seed": integer(0),
    "data.shuffle_seed": integer(0),
    "data.download": boolean(),
    "data.check_md5": boolean(),
    "data.grayscale": boolean(),
    "data.binarize": boolean(),
    "data.path": text(),
    "data.size": integer(1),
    "data.test_size": FRACTION,
    "data.classes": CLASSES,
    "data.image_shape": integers(1, length=3),
    "data.in_memory": one_of("auto", True, False),
    "data.cache_dir": text(null=True),
}

RULES: dict[str, Rule] = {
    # the training config (conf/config.yaml and its groups)
    **RUN,
    **DATA,
    "noise": number(0),
    "loss": one_of("mse", "bce"),
    "seed": integer(0, 2**32 - 1),
    "channels_last": boolean(),
    "compile": one_of(*COMPILE_MODES),
    "threads": integer(1, null=True),
    "ckpt_path": text(null=True),
    "resume": text(null=True),
    "resume_unfinished": boolean(),
    "evaluate": boolean(),
    **{f"evaluation.{key}": rule for key, rule in EVALUATION.items()},
    "interrupts.signals": strings(empty=True, options=STOP_SIGNALS),
    "interrupts.requeue_signals": strings(empty=True, options=STOP_SIGNALS),
    "module.eval_noise_seed": integer(0),
    "module.transform_head_weight": number(0),
    "model.latent_dim": integer(1),
    "model.input_shape": integers(1, length=3),
    "model.channels": integers(1),
    "model.strides": integers(1),
    "model.kernel_size": integer(1),
    "model.padding": integer(0),
    "model.fc_hidden": integers(1, empty=True),
    "model.hidden": integers(1, empty=True),
    "corruption.noise": number(0),
    "corruption.degrees": QUARTER_TURNS,
    "corruption.flips": strings(options=FLIPS),
    "corruption.shift": integer(1),
    "corruption.steps": STEPS,
    "variant.weight": number(0),
    "variant.projections": integer(1),
    "variant.beta": number(0),
    "variant.warmup_epochs": number(0),
    "variant.sigma": number(above=0),
    "optimizer.lr": number(above=0),
    "optimizer.weight_decay": number(0),
    "scheduler.max_lr": number(above=0),
    "scheduler.pct_start": FRACTION,
    "scheduler.anneal_strategy": one_of("cos", "linear"),
    "scheduler.div_factor": number(above=0),
    "scheduler.final_div_factor": number(above=0),
    "scheduler.cycle_momentum": boolean(),
    "scheduler.warmup": Rule(lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "scheduler.start_factor": Rule(lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "scheduler.eta_min": number(0),
    "scheduler.mode": one_of("min", "max"),
    "scheduler.factor": FRACTION,
    "scheduler.patience": integer(0),
    "scheduler.threshold": number(0),
    "scheduler.min_lr": number(0),
    "scheduler.steps_argument": text(),
    "scheduler.lightning.interval": one_of("step", "epoch"),
    "scheduler.lightning.frequency": integer(1),
    "scheduler.lightning.monitor": text(),
    "early_stopping.monitor": text(),
    "early_stopping.mode": one_of("min", "max"),
    "early_stopping.patience": integer(0),
    "early_stopping.min_delta": number(0),
    "callbacks.model_checkpoint.dirpath": text(),
    "callbacks.model_checkpoint.filename": text(),
    "callbacks.model_checkpoint.auto_insert_metric_name": boolean(),
    "callbacks.model_checkpoint.monitor": text(null=True),
    "callbacks.model_checkpoint.mode": one_of("min", "max"),
    "callbacks.model_checkpoint.save_top_k": integer(-1),
    "callbacks.model_checkpoint.save_last": anything_of(boolean(null=True), one_of("link")),
    "callbacks.validation_images.output_dir": text(),
    "callbacks.validation_images.num_images": integer(1),
    "callbacks.validation_images.noise_seed": integer(0),
    "callbacks.prior_samples.num_images": integer(1),
    "callbacks.prior_samples.seed": integer(0),
    "callbacks.model_summary.max_depth": integer(0),
    "logger.save_dir": text(),
    "logger.name": text(null=True),
    "logger.version": anything_of(text(null=True), one_of("")),
    "logger.default_hp_metric": boolean(),
    "logger.offline": boolean(),
    "logger.project": text(),
    "logger.experiment_name": text(),
    "logger.tracking_uri": text(),
    "logger.run_name": text(null=True),
    "trainer.accelerator": one_of("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.strategy": text(),
    "trainer.devices": anything_of(integer(-1), text(), integers(0)),
    "trainer.num_nodes": integer(1),
    "trainer.precision": one_of(*PRECISIONS),
    "trainer.fast_dev_run": anything_of(boolean(), integer(0)),
    "trainer.max_epochs": integer(-1, null=True),
    "trainer.min_epochs": integer(0, null=True),
    "trainer.max_steps": integer(-1),
    "trainer.min_steps": integer(0, null=True),
    "trainer.max_time": text(null=True),
    "trainer.limit_train_batches": batches_or_fraction(),
    "trainer.limit_val_batches": batches_or_fraction(),
    "trainer.limit_test_batches": batches_or_fraction(),
    "trainer.limit_predict_batches": batches_or_fraction(),
    "trainer.overfit_batches": batches_or_fraction(null=False),
    "trainer.val_check_interval": anything_of(integer(1, null=True), number(above=0)),
    "trainer.check_val_every_n_epoch": integer(1, null=True),
    "trainer.num_sanity_val_steps": integer(-1),
    "trainer.log_every_n_steps": integer(1),
    "trainer.enable_checkpointing": boolean(),
    "trainer.enable_progress_bar": boolean(),
    "trainer.enable_model_summary": boolean(),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.gradient_clip_val": number(0, null=True),
    "trainer.gradient_clip_algorithm": text(null=True),  # value or norm, in any case (Lightning lowercases it)
    "trainer.deterministic": anything_of(boolean(null=True), one_of("warn")),
    "trainer.benchmark": boolean(null=True),
    "trainer.inference_mode": boolean(),
    "trainer.use_distributed_sampler": boolean(),
    "trainer.profiler": text(null=True),  # Lightning's names: simple, advanced, pytorch, xla
    "trainer.detect_anomaly": boolean(),
    "trainer.barebones": boolean(),
    "trainer.plugins": anything_of(text(null=True), strings()),
    "trainer.sync_batchnorm": boolean(),
    "trainer.reload_dataloaders_every_n_epochs": integer(0),
    "trainer.default_root_dir": text(),
    "trainer.enable_autolog_hparams": boolean(),
    "trainer.model_registry": text(null=True),
}

# Nodes whose keys are not user settings: Hydra's own, and the module's links to other nodes.
SKIPPED = ("hydra", "module.net", "module.variant", "module.corruption", "module.optimizer")


def _rule(key: str, rules: Mapping[str, Rule]) -> Rule | None:
    if key in rules:
        return rules[key]
    return next((rule for pattern, rule in rules.items() if "*" in pattern and fnmatch.fnmatchcase(key, pattern)), None)


def _leaves(node: DictConfig, prefix: str = ""):
    """(dotted key, value) of every setting under `node`; lists are one setting, interpolations
    are skipped (their target is checked), and so are `_target_`-style keys."""
    for key in node:
        path = f"{prefix}{key}"
        if str(key).startswith("_") or path in SKIPPED or OmegaConf.is_interpolation(node, key):
            continue
        value = "???" if OmegaConf.is_missing(node, key) else node[key]  # a mandatory value: its command says so
        if isinstance(value, DictConfig):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value


def _noise_fits_corruption(cfg: DictConfig) -> None:
    """The noise level of the corruption, or of each step of a chain of them, within its class's range."""
    if not cfg.get("corruption"):
        return
    for node in (cfg.corruption, *cfg.corruption.get("steps", ())):
        corruption = get_class(node._target_)
        noise = node.get("noise")
        if _is_number(noise) and noise > corruption.max_noise:
            raise UserError(f"noise must be a number in [0, {corruption.max_noise:g}] for the {corruption.__name__} corruption, got {noise!r}")


def _precision_fits_accelerator(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer")
    if trainer and trainer.precision == "16-mixed" and not uses_gpu(trainer.accelerator):
        raise UserError("trainer.precision=16-mixed needs a GPU (fp16 autocast is not supported on the CPU); use bf16-mixed or 32-true")


def _schedule_has_an_end(cfg: DictConfig) -> None:
    scheduler, trainer = cfg.get("scheduler"), cfg.get("trainer")
    if scheduler and scheduler.get("steps_argument") and trainer and trainer.max_epochs in (None, -1) and trainer.max_steps == -1:
        raise UserError(f"a per-step schedule ({scheduler._target_.rsplit('.', 1)[-1]}) needs the run's length: set trainer.max_epochs or trainer.max_steps")


def _requeue_signals_stop_the_run(cfg: DictConfig) -> None:
    interrupts = cfg.get("interrupts")
    outside = [name for name in interrupts.requeue_signals if name not in interrupts.signals] if interrupts else []
    if outside:
        signals = ", ".join(interrupts.signals) or "none"
        raise UserError(f"interrupts.requeue_signals must be among interrupts.signals ({signals}), got {outside[0]}")


def _model_fits_data(cfg: DictConfig) -> None:
    model, data = cfg.get("model"), cfg.get("data")
    if model and data and "input_shape" in model and "image_shape" in data:
        shape, images = list(model.input_shape), list(data.image_shape)
        if shape != images:
            raise UserError(f"model.input_shape must be the data's image shape {images} (data.image_shape), got {shape}")


def _variant_fits_options(cfg: DictConfig) -> None:
    variant, data = cfg.get("variant"), cfg.get("data")
    if not variant:
        return
    kind = get_class(variant._target_)
    if getattr(kind, "double_backward", False) and cfg.get("compile"):
        raise UserError("variant=contractive needs compile=false: its Jacobian penalty takes a double backward, which torch.compile does not support")
    if getattr(kind, "generative", False) and data and data.get("binarize") and cfg.get("loss") == "mse":
        raise UserError("variant=vae with data.binarize=true needs loss=bce: a Gaussian likelihood of binary images is no likelihood in nats")


CROSS_CHECKS = (
    _model_fits_data,
    _variant_fits_options,
    _noise_fits_corruption,
    _precision_fits_accelerator,
    _schedule_has_an_end,
    _requeue_signals_stop_the_run,
)


def validate(cfg: DictConfig, rules: Mapping[str, Rule] = RULES, prefix: str = "") -> None:
    """Check every setting of a composed config against its command's `rules`; raise a UserError
    for the first bad one. With a `prefix` (`data.`), `cfg` is that node alone: its own keys are
    checked, not the cross-checks."""
    for key, value in _leaves(cfg, prefix):
        rule = _rule(key, rules)
        if rule is not None and not rule.accepts(value):
            raise UserError(f"{key} must be {rule.allowed}, got {value!r}")
    for check in CROSS_CHECKS if not prefix else ():
        check(cfg)


def unchecked_keys(cfg: DictConfig, rules: Mapping[str, Rule] = RULES) -> list[str]:
    """The settings of `cfg` that no rule of `rules` covers (the tests keep this empty for every command)."""
    return [key for key, _ in _leaves(cfg) if _rule(key, rules) is None]
