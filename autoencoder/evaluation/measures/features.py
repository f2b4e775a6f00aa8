"""Feature probes: how much of the class the frozen codes carry, by a linear probe and k-NN, beside
the same probes on raw pixels and on PCA of the pixels with as many components as the latent."""

import logging
from typing import Annotated

from sklearn.decomposition import PCA

from autoencoder.config.validation import integer
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.evaluation.metrics import knn_accuracy, linear_probe_accuracy
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)

# The inputs probed, each a progress step: codes, pixels and PCA of the pixels.
INPUTS = 3


class Features(Measure):
    """Linear-probe and `knn_k`-NN test accuracy, fitted on the first `train_size` training images
    (None: all of them)."""

    def __init__(self, train_size: Annotated[int | None, integer(1, null=True)] = None, knn_k: Annotated[int, integer(1)] = 5) -> None:
        self.train_size, self.knn_k = train_size, knn_k

    def steps(self, subject: Subject) -> int:
        return INPUTS

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        (train_x, train_y), (test_x, test_y) = subject.split("train"), subject.split("test")
        train_x, train_y = train_x[: self.train_size], train_y[: self.train_size]
        pixels = train_x.flatten(1).numpy(), test_x.flatten(1).numpy()
        codes = in_batches(subject.module.encode, train_x, subject.batch_size).numpy(), subject.codes.numpy()
        dims = min(codes[0].shape[1], *pixels[0].shape)  # PCA has no more components than pixels (a VQ-VAE's grid code has more) or images
        pca = PCA(dims, random_state=subject.seed).fit(pixels[0])
        inputs = {"latent": codes, "pixels": pixels, f"pca{dims}": (pca.transform(pixels[0]), pca.transform(pixels[1]))}
        labels = train_y.numpy(), test_y.numpy()
        probed = {}
        for name, (a, b) in inputs.items():
            probed[name] = {
                "dims": a.shape[1],
                "linear_probe_accuracy": linear_probe_accuracy(a, labels[0], b, labels[1]),
                "knn_accuracy": knn_accuracy(a, labels[0], b, labels[1], self.knn_k),
            }
            log.info(
                "features %s (%d dims): linear probe %.4f, %d-NN %.4f",
                name,
                a.shape[1],
                probed[name]["linear_probe_accuracy"],
                self.knn_k,
                probed[name]["knn_accuracy"],
            )
            steps.advance(note=f"probes on {name}")
        table = markdown_table(
            [f"features ({len(train_x)} train images)", "dims", "linear probe", f"{self.knn_k}-NN"],
            ([name, p["dims"], f"{p['linear_probe_accuracy']:.4f}", f"{p['knn_accuracy']:.4f}"] for name, p in probed.items()),
        )
        scalars = {f"{probe}/{name}": p[f"{probe}_accuracy"] for name, p in probed.items() for probe in ("linear_probe", "knn")}
        return Outcome(
            result={"train_images": len(train_x), "knn_k": self.knn_k, **probed},
            tables=[table],
            scalars=scalars,
            headline={key: probed["latent"][key] for key in ("linear_probe_accuracy", "knn_accuracy")},
        )
