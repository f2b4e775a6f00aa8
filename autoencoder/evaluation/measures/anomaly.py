"""Anomaly detection by a model trained on some classes only (its run's data.classes): the test AUROC
(%) with the other classes as anomalies, for each score of the anomaly command."""

import logging
from typing import Annotated

import torch

from autoencoder.config.validation import integer
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.evaluation.metrics import auroc
from autoencoder.evaluation.scores import scorer
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)


class Anomaly(Measure):
    """The k-NN scores use `knn_k` neighbours among those classes' training images and their codes,
    as the anomaly command's do."""

    def __init__(self, knn_k: Annotated[int, integer(1)] = 5) -> None:
        self.knn_k = knn_k

    def applies(self, subject: Subject) -> bool:
        return subject.run_cfg.data.classes is not None  # trained on every class, nothing is an anomaly

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        (train_x, train_y), (test_x, test_y) = subject.split("train"), subject.split("test")
        normal = torch.tensor(subject.data.dataset.labels_of(subject.run_cfg.data.classes))
        by_score = scorer(subject.module, train_x[torch.isin(train_y, normal)], self.knn_k)(test_x)
        is_anomaly = ~torch.isin(test_y, normal)
        aurocs = {name: 100 * auroc(score, is_anomaly) for name, score in by_score.items()}
        names = [subject.names[c] for c in normal.tolist()]
        log.info("anomaly detection, test AUROC %% with %s as normal: %s", "/".join(names), ", ".join(f"{k} {v:.2f}" for k, v in aurocs.items()))
        table = markdown_table(
            ["normal classes", *(f"test AUROC (%), {name} score" for name in aurocs)], [[", ".join(names), *(f"{v:.1f}" for v in aurocs.values())]]
        )
        return Outcome(
            result={"normal_classes": names, "knn_k": self.knn_k, "test_auroc": aurocs},
            tables=[table],
            scalars={f"anomaly_auroc/{name}": value for name, value in aurocs.items()},
            headline={f"anomaly_auroc_{name}": value for name, value in aurocs.items()},
        )
