"""The generative study table (`python -m autoencoder.study`): several autoencoders trained alike,
each asked how well it reconstructs, how good its samples are and, for the VAE family, how likely
it finds the test images.

Each model of `models` (a name and its training overrides: `vae: [variant=vae]`) is an ordinary
training run in `<folder>/<name>/`. Its config is conf/study.yaml composed with the study's own
command line and then the model's overrides, in that order, so that `data=fashion_mnist` or
`trainer.max_epochs=10` reaches every model while the model's `variant=` and `prior=` win; the
study's own keys are left out. Composing again, rather than editing the composed config, lets a
model choose group options (its variant, its prior) exactly as on the train command's line. The
command line reaches this function as Hydra recorded it (`hydra.overrides.task`).

For each model, every step is skipped where its output is there already, so that an interrupted
study is finished by starting the command again with `hydra.run.dir=<its folder>`:

1. train (a completed run, metrics.json, is kept; a stopped one goes on from its latest checkpoint);
2. a model that samples no prior without one, the VQ-VAE, gets its code prior
   (autoencoder.workflows.code_prior, settings under `code_prior`), written as
   `<best checkpoint>-prior.ckpt`;
3. evaluate that checkpoint with the measures the table reads (`MEASURES`; the likelihood applies
   to the VAE family only) into `<name>/evaluation/`, with the run's `evaluation` settings (an
   evaluation made with other settings is made again);
4. draw `samples` prior samples into `<name>/sample/prior.png` (autoencoder.evaluation.sampling).

The folder gets `study.json` and `study.md`: a row per model (its overrides, training seconds,
test MSE, FID, precision and recall of its samples against the test images, -log p(x) in nats with
its k importance samples), the training images' floor once, and links to each prior.png.
"""

import json
import logging
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from autoencoder.config.validation import NULL, RULES, Rule, anything_of, integer, strings, validate
from autoencoder.evaluation.evaluate import evaluate, settings_of
from autoencoder.evaluation.sampling import sample
from autoencoder.runs.checkpoints import load_trained
from autoencoder.runs.record import RunRecord, Status
from autoencoder.utils.cli import load_config
from autoencoder.utils.errors import UserError, user_message
from autoencoder.utils.files import write_atomic, write_json
from autoencoder.utils.progress import Counted, Reporter
from autoencoder.utils.tables import markdown_table
from autoencoder.workflows import code_prior
from autoencoder.workflows.jobs import train_and_evaluate

log = logging.getLogger(__name__)

# The measures whose figures the table shows; the run's other measures are left out.
MEASURES = ("reconstruction", "generation", "likelihood")


def _override_lists(v: object) -> bool:
    return isinstance(v, DictConfig) and len(v) > 0 and all(isinstance(x, ListConfig) and all(isinstance(o, str) for o in x) for x in v.values())


# conf/study.yaml's own keys; the rest is the training config each model's run starts from.
OWN_RULES = {
    "models": Rule(_override_lists, "a non-empty mapping of model names to lists of training overrides ([variant=vae, prior=vamp])"),
    "only": anything_of(NULL, strings()),
    "code_prior": Rule(lambda v: isinstance(v, DictConfig), "settings of conf/code_prior.yaml (code_prior.epochs=5)"),
    "samples": integer(1),
}
STUDY_RULES = {**RULES, **OWN_RULES}
# The code prior's settings as the study's keys, so that a bad one is named `code_prior.<key>`.
CODE_PRIOR_RULES = {f"code_prior.{key}": rule for key, rule in code_prior.RULES.items()}


def model_config(cfg: DictConfig, name: str, command_line: list[str], out: Path) -> DictConfig:
    """The training config of model `name`: conf/study.yaml composed with `command_line` and then
    the model's overrides, without the study's own keys, writing to `<out>/<name>`; checked now, so
    that a bad model stops the study before any model trains."""
    overrides = list(cfg.models[name])
    try:
        composed = load_config("study", [*command_line, *overrides])
        run_cfg = OmegaConf.masked_copy(composed, [key for key in composed if key not in OWN_RULES])
        with open_dict(run_cfg):
            run_cfg.output_dir, run_cfg.evaluate = str(out / name), False  # the study evaluates the checkpoint it samples
            run_cfg.resume_unfinished = True  # a training the study's interruption stopped goes on from its checkpoint
        validate(run_cfg, RULES)
    except (UserError, HydraException) as exc:  # a bad entry of the model's list: one line that names the model
        raise UserError(f"models.{name}={overrides}: {user_message(exc) or str(exc).splitlines()[0]}") from exc
    return run_cfg


def trained(run_cfg: DictConfig) -> str:
    """The best checkpoint (else the last) of the model's run, trained unless completed before."""
    record = RunRecord.read(run_cfg.output_dir)
    if record is None or record.status is not Status.COMPLETED:
        train_and_evaluate(run_cfg)
        record = RunRecord.read(run_cfg.output_dir)
    else:
        log.info("%s: trained before, kept", run_cfg.output_dir)
    return record.best_checkpoint or record.last_checkpoint


def with_code_prior(checkpoint: str, cfg: DictConfig, run_cfg: DictConfig) -> str:
    """The checkpoint the model samples: its own, or for a variant that needs a learned prior over
    its codes (a VQ-VAE) the one autoencoder.code_prior writes beside it, trained unless there."""
    variant = load_trained(checkpoint)[1].variant
    if variant.has_prior or variant.mixture_prior:
        return checkpoint
    written = Path(checkpoint).with_name(f"{Path(checkpoint).stem}-prior.ckpt")
    if written.is_file():
        log.info("%s: its code prior was trained before, kept", written)
    else:
        prior_cfg = code_prior_config(cfg, checkpoint, Path(run_cfg.output_dir) / "code_prior", run_cfg.progress)
        code_prior.train_code_prior(prior_cfg)
    return str(written)


def code_prior_config(cfg: DictConfig, checkpoint: str, out: Path, progress: DictConfig) -> DictConfig:
    """conf/code_prior.yaml for `checkpoint` with the study's `code_prior` settings."""
    prior_cfg = OmegaConf.merge(load_config("code_prior"), cfg.code_prior, {"ckpt_path": checkpoint, "output_dir": str(out), "progress": progress})
    validate(prior_cfg, CODE_PRIOR_RULES, prefix="code_prior.")
    return prior_cfg


def evaluated(checkpoint: str, run_cfg: DictConfig) -> dict:
    """evaluation.json of `checkpoint` with the table's measures, evaluated unless it is there with
    the same settings (a study started again with `evaluation.likelihood.samples=5000` evaluates again)."""
    out = Path(run_cfg.output_dir) / "evaluation"
    settings = OmegaConf.merge({"ckpt_path": checkpoint, "output_dir": str(out), "progress": run_cfg.progress}, run_cfg.evaluation)
    with open_dict(settings):
        for name in settings.measures:
            if name not in MEASURES:
                settings.measures[name] = None  # left out, as `~measures.<name>` would
    done = json.loads((out / "evaluation.json").read_text()) if (out / "evaluation.json").is_file() else {}
    if done.get("checkpoint") == str(Path(checkpoint).resolve()) and done.get("settings") == settings_of(settings):
        return done
    return dict(evaluate(settings))


def sampled(checkpoint: str, run_cfg: DictConfig, samples: int) -> Path:
    """`<run>/sample/prior.png`, `samples` images from the model's prior (else a mixture fitted to
    its codes), drawn unless it is there for this checkpoint."""
    out = Path(run_cfg.output_dir) / "sample"
    done = json.loads((out / "sample.json").read_text()) if (out / "sample.json").is_file() else {}
    if done.get("checkpoint") != str(Path(checkpoint).resolve()) or done["settings"]["num_samples"] != samples:
        sample_cfg = load_config("sample", [f"ckpt_path={checkpoint}", f"num_samples={samples}"])
        with open_dict(sample_cfg):
            sample_cfg.output_dir, sample_cfg.progress = str(out), run_cfg.progress
        sample(sample_cfg)
    return out / "prior.png"


def row(name: str, overrides: list[str], record: RunRecord, evaluation: dict, prior_png: Path, out: Path) -> dict:
    """A model's figures as study.json keeps them: None where a figure does not apply."""
    generation, likelihood = evaluation.get("generation"), evaluation.get("likelihood")
    return {
        "model": name,
        "overrides": overrides,
        "train_seconds": record.train_seconds,
        "test_mse": evaluation["reconstruction"]["mse"],
        **{key: generation["samples"][key] if generation else None for key in ("fid", "precision", "recall")},
        "nll_nats": likelihood["nll_nats"] if likelihood else None,
        "nll_samples": likelihood["samples"] if likelihood else None,
        "prior_png": str(prior_png.relative_to(out)),
        "evaluation": str((out / name / "evaluation" / "evaluation.json").relative_to(out)),
    }


def table(rows: list[dict], floor: dict | None) -> str:
    """The markdown table: a row per model, then the training images' floor."""

    def figure(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = ["model", "overrides", "train (s)", "test MSE", "FID", "precision", "recall", "-log p(x) (nats)", "k", "samples"]
    lines = [
        [
            r["model"],
            " ".join(f"`{o}`" for o in r["overrides"]) or "-",
            figure(r["train_seconds"], ".0f"),
            figure(r["test_mse"], ".5f"),
            *(figure(r[key], ".3f") for key in ("fid", "precision", "recall")),
            figure(r["nll_nats"], ".2f"),
            figure(r["nll_samples"], "d"),
            f"[prior.png]({r['prior_png']})",
        ]
        for r in rows
    ]
    if floor is not None:
        lines.append(["training images (floor)", "-", "-", "-", *(figure(floor[key], ".3f") for key in ("fid", "precision", "recall")), "-", "-", "-"])
    return markdown_table(header, lines)


def study(cfg: DictConfig, command_line: list[str]) -> dict:
    """Train, (code-prior,) evaluate and sample every model chosen (`only`, null: all of
    `models`), skipping what is done; write study.json and study.md and return what study.json
    holds. `command_line` is the study's overrides as Hydra recorded them; its `hydra.` keys are
    the study's own. Where stdout is not a terminal, `progress:` lines count the models."""
    validate(cfg, STUDY_RULES)
    names = list(cfg.only) if cfg.only is not None else list(cfg.models)
    unknown = [name for name in names if name not in cfg.models]
    if unknown:
        raise UserError(f"only: {unknown[0]!r} is not a model of the study (its models: {', '.join(cfg.models)})")
    out = Path(cfg.output_dir)
    training_line = [o for o in command_line if not o.lstrip("+~").startswith("hydra.")]
    configs = {name: model_config(cfg, name, training_line, out) for name in names}
    code_prior_config(cfg, "checkpoint.ckpt", out, cfg.progress)  # a bad code_prior setting stops the study now

    progress = Counted(Reporter(**cfg.progress), "study", len(names), "models")
    rows, floor = [], None
    for name, run_cfg in configs.items():
        checkpoint = with_code_prior(trained(run_cfg), cfg, run_cfg)
        evaluation = evaluated(checkpoint, run_cfg)
        prior_png = sampled(checkpoint, run_cfg, cfg.samples)
        rows.append(row(name, list(cfg.models[name]), RunRecord.read(run_cfg.output_dir), evaluation, prior_png, out))
        if floor is None and "generation" in evaluation:
            floor = evaluation["generation"]["floor"]
        progress.advance(note=name)
    summary = {"models": rows, "floor": floor}
    markdown = table(rows, floor)
    write_json(out / "study.json", summary)
    write_atomic(out / "study.md", markdown)
    log.info("study of %d models, %s:\n%s", len(rows), out, markdown)
    return summary
