"""What a measure of the evaluation is. Each is one class, built from its entry under `measures` in
conf/evaluation/default.yaml (its settings are the constructor's arguments), that gets the checkpoint
under evaluation (`Subject`) and hands back an `Outcome`: evaluate writes every part of it where it
belongs (evaluation.json, evaluation.md, PNGs, TensorBoard, the headline) without knowing which
measure made it, so a new measure is a class and a config entry and touches nothing else.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from matplotlib.figure import Figure
from omegaconf import DictConfig
from torch import Tensor

from autoencoder.data.images import ImageDataModule, class_names
from autoencoder.evaluation.batched import in_batches
from autoencoder.models.module import LitAutoencoder
from autoencoder.utils.progress import Counted


@dataclass
class Subject:
    """The checkpoint under evaluation and its data. What several measures use is made once, when
    the first asks: each split as floats, the class names and the test codes."""

    module: LitAutoencoder
    run_cfg: DictConfig  # the training run's config, from the checkpoint
    data: ImageDataModule
    batch_size: int  # images per forward pass
    seed: int  # for whatever a measure draws or fits at random
    progress: DictConfig  # Reporter settings, for a measure that prints progress lines of its own
    folder: Path  # where the evaluation writes: a long measure keeps its work in progress there
    _splits: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict, init=False, repr=False)

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """Images (N, C, H, W) in [0, 1] and labels (N,) of the `train`, `val` or `test` split."""
        if name not in self._splits:
            self._splits[name] = self.data.split(name)
        return self._splits[name]

    @cached_property
    def names(self) -> list[str]:
        """The class names, label by label."""
        return class_names(self.data, self.split("test")[1])

    @cached_property
    def codes(self) -> Tensor:
        """The codes of the test images, (N, latent_dim)."""
        return in_batches(self.module.encode, self.split("test")[0], self.batch_size)


@dataclass
class Embedding:
    """Points for TensorBoard's embedding projector, each with its label and image sprite."""

    points: Tensor  # (N, D)
    labels: list[str]
    images: Tensor  # (N, C, H, W)


@dataclass
class Outcome:
    """What a measure hands back, each part for one output; a measure fills the parts it has."""

    # evaluation.json's entry under the measure's name; None: no entry
    result: dict | list | None = None
    # evaluation.md, in the measures' order
    tables: list[str] = field(default_factory=list)
    # TensorBoard scalars, tagged eval/<key>
    scalars: dict[str, float] = field(default_factory=dict)
    # <name>.png and TensorBoard's eval/<name>: a matplotlib figure, or an image (C, H, W) in [0, 1]
    figures: dict[str, Figure | Tensor] = field(default_factory=dict)
    # TensorBoard's projector, by tag
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    # flat names: what a training run with evaluate=true keeps in metrics.json, a sweep's columns
    headline: dict[str, float] = field(default_factory=dict)


class Measure(ABC):
    """One measure of a checkpoint."""

    def applies(self, subject: Subject) -> bool:
        """Whether the measure means anything for this checkpoint (a likelihood needs a generative
        variant); one that does not is not run and leaves no trace."""
        return True

    def steps(self, subject: Subject) -> int:
        """The evaluation's progress steps this measure counts for: 1, or its parts when they are
        long (the rows of a table)."""
        return 1

    @abstractmethod
    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        """Measure the subject. A measure of several steps advances `steps` after each part (its note
        says which); the steps it leaves are advanced when it returns."""
