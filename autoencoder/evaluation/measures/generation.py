"""How close a model's samples are to the test images: the Fréchet distance (FID's formula)
and precision/recall, on the features of the dataset's own classifier (autoencoder.evaluation.classifier),
beside the same figures for training images against the test images, the floor a perfect model would
reach with as many images. Optionally also torchmetrics' FID on Inception-v3 features, the number
papers on natural images report. A model with a prior samples it (a VAE's, a VQ-VAE's trained
code prior); any other model (plain, sparse, contractive) a Gaussian mixture fitted to the codes of
the training images it is compared with (autoencoder.evaluation.mixture), the ex-post density that
makes it generative. A VQ-VAE without its code prior is not measured (sampling says why).

On binarised data (data.binarize=true) the test and training images are binary, while a decoder
gives each pixel's probability: grey images, which a classifier tells apart from binary ones
whatever their shapes. So there the samples are binary too, each pixel drawn with its probability
(seeded): x ~ p(x|z), the model's own samples of such data."""

import logging
from typing import Annotated

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

from autoencoder.config.validation import integer, one_of
from autoencoder.data.images import binarized
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.classifier import feature_classifier
from autoencoder.evaluation.generation import frechet_distance, precision_recall
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.evaluation.mixture import COVARIANCES
from autoencoder.evaluation.sampling import code_mixture, prior_images
from autoencoder.utils.errors import UserError
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)

ROWS = {"samples": "prior samples vs test images", "floor": "training vs test images (floor)"}


def inception_network() -> nn.Module:
    """Inception-v3's 2048 pool features as torchmetrics computes FID with them (torch-fidelity's
    port, its weights downloaded on first use)."""
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    except ModuleNotFoundError as exc:
        raise UserError("generation.inception=true needs torch-fidelity for Inception-v3: pip install torch-fidelity (or torchmetrics[image])") from exc
    except OSError as exc:  # no network for the weights
        raise UserError(f"generation.inception=true cannot download the Inception-v3 weights ({exc}); run it once where the network is reachable") from exc


def inception_fid(network: nn.Module, real: Tensor, fake: Tensor, batch_size: int) -> float:
    """torchmetrics' FID of images (N, C, H, W) in [0, 1] on `network`'s features, fed as uint8 RGB
    (N, 3, H, W) as Inception takes them: grey images have their one channel repeated."""
    metric = FrechetInceptionDistance(feature=network, input_img_size=(3, *real.shape[2:]))
    for images, is_real in ((real, True), (fake, False)):
        for chunk in images.split(batch_size):
            metric.update((chunk * 255).round().to(torch.uint8).expand(-1, 3, -1, -1), real=is_real)
    return float(metric.compute())


class Generation(Measure):
    """`samples` prior samples (at most as many as test and training images) against as many test
    images; precision and recall with `knn_k` nearest neighbours; `inception` adds Inception FID. A
    model with no prior samples a mixture of `components` Gaussians with `covariance` matrices,
    fitted to the codes of `fit_size` of the training images compared (None: all of them)."""

    def __init__(
        self,
        samples: Annotated[int, integer(2)] = 10000,
        knn_k: Annotated[int, integer(1)] = 3,
        inception: bool = False,
        components: Annotated[int, integer(1)] = 10,
        covariance: Annotated[str, one_of(*COVARIANCES)] = "full",
        fit_size: Annotated[int | None, integer(1, null=True)] = 10000,
    ) -> None:
        if samples <= knn_k:
            raise UserError(f"generation.samples={samples} must be larger than generation.knn_k={knn_k}: each point needs k neighbours besides itself")
        self.samples, self.knn_k, self.inception, self.components, self.covariance = samples, knn_k, inception, components, covariance
        self.fit_size = fit_size

    def applies(self, subject: Subject) -> bool:
        variant = subject.module.variant
        return variant.has_prior or variant.mixture_prior  # not a VQ-VAE before its prior is trained

    def _images(self, subject: Subject) -> tuple[Tensor, Tensor]:
        """As many test and training images (n, C, H, W) each, drawn with the seed, of the classes the
        model was trained on; n is `samples` or fewer."""
        test, labels = subject.split("test")
        if subject.data.dataset.classes is not None:  # the train split holds these classes only
            test = test[torch.isin(labels, torch.tensor(subject.data.dataset.classes))]
        train = subject.split("train")[0]
        n = min(self.samples, len(test), len(train))
        if n <= self.knn_k:
            raise UserError(f"the generation measure compares {n} images, and precision and recall with knn_k={self.knn_k} need more than {self.knn_k}")
        generator = torch.Generator().manual_seed(subject.seed)
        return test[torch.randperm(len(test), generator=generator)[:n]], train[torch.randperm(len(train), generator=generator)[:n]]

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        test, train = self._images(subject)
        module, mixture = subject.module, None
        if not module.variant.has_prior:  # fitted to the codes of the training images compared below
            mixture = code_mixture(module, train, self.components, self.covariance, subject.seed, subject.batch_size, self.fit_size)
        fake = prior_images(module, len(test), subject.seed, subject.batch_size, mixture)  # (n, C, H, W)
        if subject.data.dataset.binarize:  # binary like the images it is compared with
            fake = binarized(fake, torch.Generator().manual_seed(subject.seed))
        net, manifest = feature_classifier(subject.data.dataset, tuple(test.shape[1:]))
        features = {name: in_batches(net.features, images, subject.batch_size) for name, images in (("test", test), ("train", train), ("fake", fake))}
        fitted = "the" if self.fit_size is None or self.fit_size >= len(train) else f"{self.fit_size} of the"
        prior = "model" if mixture is None else f"mixture of {self.components} Gaussians, {self.covariance} covariance, on {fitted} training codes"
        classifier = {key: manifest[key] for key in ("sha256", "test_accuracy", "settings")}
        result = {"images": len(test), "knn_k": self.knn_k, "prior": prior, "binary": subject.data.dataset.binarize, "classifier": classifier}
        for row, other in (("samples", features["fake"]), ("floor", features["train"])):
            precision, recall = precision_recall(features["test"], other, self.knn_k)
            result[row] = {"fid": frechet_distance(features["test"], other), "precision": precision, "recall": recall}
        if self.inception:
            network = inception_network()
            for row, other in (("samples", fake), ("floor", train)):
                result[row]["inception_fid"] = inception_fid(network, test, other, subject.batch_size)
        figures, floor = result["samples"], result["floor"]
        log.info("generation: FID %.3f (floor %.3f), precision %.3f, recall %.3f", figures["fid"], floor["fid"], figures["precision"], figures["recall"])
        columns = ["fid", "precision", "recall", *(["inception_fid"] if self.inception else [])]
        table = markdown_table(
            [f"{len(test)} images", "FID (classifier features)", "precision", "recall", *(["FID (Inception)"] if self.inception else [])],
            [[label, *(f"{result[row][key]:.4f}" for key in columns)] for row, label in ROWS.items()],
        )
        return Outcome(
            result=result,
            tables=[table],
            scalars={f"generation/{row}/{key}": result[row][key] for row in ROWS for key in columns},
            headline={key: figures[key] for key in columns},
        )
