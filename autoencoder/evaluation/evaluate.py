"""Evaluate a trained checkpoint on the test set (`python -m autoencoder.evaluate ckpt_path=...`): the
measures under `measures` (conf/evaluation/default.yaml: reconstruction, denoising, latent space,
feature probes, a VAE's likelihood, anomaly detection), each run where it applies, and what they hand
back written to the command's own folder: evaluation.json, evaluation.md, PNG figures and TensorBoard
events. The measures are plug-ins (autoencoder/evaluation/measures/): nothing here knows one. A
training run with evaluate=true runs it on its best checkpoint and keeps the `headline` figures in its
metrics.json.
"""

import logging
from collections.abc import Mapping
from pathlib import Path

from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import save_image

from autoencoder.config.validation import EVALUATION, RUN, RUN_DATA, text, validate
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.runs.checkpoints import datamodule_for, load_trained
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic, write_json
from autoencoder.utils.progress import Counted, Reporter

log = logging.getLogger(__name__)

# conf/evaluate.yaml's keys: the evaluation's settings, the checkpoint, and data.* for its run's data.
RULES = {**RUN, **RUN_DATA, **EVALUATION, "ckpt_path": text()}


class Evaluation(dict):
    """evaluation.json's content, and the headline figures its measures picked, which the file leaves
    out: what a training run with evaluate=true keeps in metrics.json, under flat names so that a
    sweep's summary can make them columns (test MSE, denoising PSNR at gaussian 0.3, probe
    accuracies, a VAE's -ELBO and -log p(x), ...)."""

    def __init__(self, content: dict, headline: dict[str, float]) -> None:
        super().__init__(content)
        self.headline = headline


def instantiate_measures(measures: DictConfig | None) -> dict[str, Measure]:
    """The measures of the config's `measures` node by name, in its order; an entry set to null is left out."""
    built = {}
    for name, spec in (measures or {}).items():
        if spec is None:
            continue
        if not isinstance(spec, DictConfig) or "_target_" not in spec:
            raise UserError(f"measures.{name} must be a measure config with a _target_, got {spec!r}")
        measure = instantiate(spec)
        if not isinstance(measure, Measure):
            raise UserError(f"measures.{name}: {spec._target_} is not a measure (a subclass of autoencoder.evaluation.measures.base.Measure)")
        built[name] = measure
    return built


def settings_of(cfg: DictConfig) -> dict:
    """The settings an evaluation's figures depend on besides its checkpoint and data. evaluation.json
    keeps them, so that a reader, or the study, can tell what an evaluation was made with."""
    return {"batch_size": cfg.batch_size, "seed": cfg.seed, "measures": OmegaConf.to_container(cfg.measures, resolve=True)}


def write(out: Path, result: Evaluation, outcomes: list[Outcome]) -> None:
    """evaluation.json, evaluation.md (the measures' tables, in their order), a PNG per figure and
    TensorBoard's scalars, images, projector and tables."""
    tables = f"# Evaluation of {result['checkpoint']} on {result['data']}\n\n" + "\n".join(table for o in outcomes for table in o.tables)
    with SummaryWriter(str(out / "tensorboard")) as writer:
        for outcome in outcomes:
            for tag, value in outcome.scalars.items():
                writer.add_scalar(f"eval/{tag}", value)
            for name, figure in outcome.figures.items():
                if isinstance(figure, Figure):
                    figure.savefig(out / f"{name}.png", dpi=100)
                    writer.add_figure(f"eval/{name}", figure, close=False)
                else:
                    save_image(figure, out / f"{name}.png")
                    writer.add_image(f"eval/{name}", figure)
            for tag, embedding in outcome.embeddings.items():
                writer.add_embedding(embedding.points, metadata=embedding.labels, label_img=embedding.images, tag=tag)
        writer.add_text("eval/tables", tables)
    write_json(out / "evaluation.json", result)
    write_atomic(out / "evaluation.md", tables)


def evaluate(cfg: DictConfig, data: Mapping | None = None) -> Evaluation:
    """Run the configured measures that apply on the checkpoint and write what they hand back.
    `data` is the command line's data (keys of the run's, or another dataset:
    autoencoder.runs.checkpoints.datamodule_for). Where stdout is not a terminal the measures'
    steps (a denoising row, a probed input, ...) make `progress:` lines, with the settings of
    `cfg.progress`."""
    validate(cfg, RULES)
    measures = instantiate_measures(cfg.measures)
    run_cfg, module = load_trained(cfg.ckpt_path)
    out = Path(cfg.output_dir)
    subject = Subject(module, run_cfg, datamodule_for(run_cfg, data), cfg.batch_size, cfg.seed, cfg.progress, out)
    out.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails now, not after the measures

    applying = {name: measure for name, measure in measures.items() if measure.applies(subject)}
    steps = Counted(Reporter(**cfg.progress), "evaluate", sum(m.steps(subject) for m in applying.values()) + 1, "steps")  # the last: writing
    outcomes = {}
    for name, measure in applying.items():
        end = steps.done + measure.steps(subject)
        outcomes[name] = measure.measure(subject, steps)
        if steps.done < end:
            steps.advance(end - steps.done, note=name)
    result = Evaluation(
        {
            "checkpoint": str(Path(cfg.ckpt_path).expanduser().resolve()),
            "data": subject.data.dataset.name,
            "latent_dim": module.net.latent_dim,
            "trained_noise": run_cfg.noise,
            "settings": settings_of(cfg),
        }
        | {name: outcome.result for name, outcome in outcomes.items() if outcome.result is not None},
        headline={key: value for outcome in outcomes.values() for key, value in outcome.headline.items()},
    )
    write(out, result, list(outcomes.values()))
    steps.advance(note="figures and TensorBoard")
    log.info("evaluation written to %s", out)
    return result
