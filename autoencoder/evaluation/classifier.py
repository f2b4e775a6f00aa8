"""The feature classifier that generation is measured with (`python -m autoencoder.classifier data=mnist`).

FID is defined on the features of Inception-v3, a network trained on ImageNet: its weights come from
a download, and its features say little about 28x28 digits. Here each dataset gets its own small
CNN instead, trained on the dataset's whole training split, and its penultimate layer (`FEATURES`
values after a ReLU) gives the features that the Fréchet distance and precision/recall compare
(autoencoder.evaluation.generation). Its numbers compare models measured with the same classifier
only, so the classifier is built once per dataset and image shape and kept beside the data:

    <cache folder>/<C>x<H>x<W>.json     the manifest: the weights' file and sha256, the settings and
                                        command that made them, the test accuracy, the time it took
    <cache folder>/<sha256>.pt          the weights

where the cache folder is `<data_dir>/<dataset>/feature_classifier/` (`feature_classifier/` in a
folder dataset's cache folder). Training is deterministic: the same seed, epochs and data give the
same weights, byte for byte, on the same machine and thread count (CPU kernels may sum in another
order elsewhere). Loading checks the weights against the manifest's sha256, so a damaged file is
refused rather than silently measuring with other features.
"""

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from autoencoder import CONFIG_DIR
from autoencoder.config.validation import RUN, integer, validate
from autoencoder.data.dataset import ImageDataset, check_files
from autoencoder.data.images import to_unit_range
from autoencoder.evaluation.batched import in_batches
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic, write_json

log = logging.getLogger(__name__)

FEATURES = 128  # the penultimate layer's width: the features' dimension
BATCH_SIZE, LR = 128, 1e-2  # Adam on batches of 128: fixed, so that only seed and epochs name a recipe
SEED, EPOCHS = 0, 2  # what an evaluation that finds no classifier trains with (conf/classifier.yaml's defaults)

# conf/classifier.yaml's keys; data.* are the dataset's own settings.
RULES = {**RUN, "seed": integer(0, 2**32 - 1), "epochs": integer(1)}


class FeatureClassifier(nn.Module):
    """Two strided convolutions, a pooled 4x4 map, a ReLU layer of `FEATURES` values (the features),
    and the class scores. Strides rather than pooling: about a third of the work, so that MNIST's
    training takes a minute on 2 CPU cores. Any image size: the pooling makes the map 4x4."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 5, stride=2, padding=2),
            nn.ReLU(),  # (B, 16, H/2, W/2)
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),  # (B, 32, H/4, W/4)
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # (B, 512)
            nn.Linear(32 * 16, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, classes)

    def features(self, images: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] to features (B, FEATURES)."""
        return self.body(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(images))  # (B, classes)


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Torch's global RNG seeded and its deterministic algorithms on inside the block; both as they
    were after it, so that a measure training the classifier leaves the caller's draws alone."""
    was = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was)


def train_classifier(images: Tensor, labels: Tensor, classes: int, seed: int, epochs: int) -> FeatureClassifier:
    """A classifier of uint8 images (N, C, H, W) with labels (N,), trained on the CPU with Adam for
    `epochs` passes in an order drawn from `seed`."""
    with deterministic(seed):
        net = FeatureClassifier(images.shape[1], classes)
        optimizer = torch.optim.Adam(net.parameters(), lr=LR)
        order = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            total = 0.0
            for batch in torch.randperm(len(images), generator=order).split(BATCH_SIZE):
                loss = F.cross_entropy(net(to_unit_range(images[batch])), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            log.info("feature classifier: epoch %d/%d, train loss %.4f", epoch + 1, epochs, total / len(images))
    return net.eval()


def accuracy(net: FeatureClassifier, images: Tensor, labels: Tensor) -> float:
    scores = in_batches(lambda x: net(to_unit_range(x)), images, 1000)  # (N, classes)
    return float((scores.argmax(1) == labels).double().mean())


def cache_folder(dataset: ImageDataset) -> Path:
    """Where a dataset's classifiers are kept: beside its files."""
    if hasattr(dataset, "data_dir"):
        return dataset.data_dir / dataset.name / "feature_classifier"
    return dataset.cache_folder / "feature_classifier"  # a folder of images: its own cache folder


def manifest_path(dataset: ImageDataset, shape: tuple[int, ...]) -> Path:
    return cache_folder(dataset) / f"{'x'.join(map(str, shape))}.json"


def build_command(dataset: ImageDataset) -> str:
    """The command that builds this dataset's classifier, for the messages that send a user to it."""
    target = f"{type(dataset).__module__}.{type(dataset).__name__}"
    option = next((p.stem for p in sorted((CONFIG_DIR / "data").glob("*.yaml")) if OmegaConf.load(p).get("_target_") == target), None)
    words = ["python -m autoencoder.classifier", f"data={option or '<its data option>'}"]
    words += [f"data.{key}={getattr(dataset, key)}" for key in ("data_dir", "path") if hasattr(dataset, key)]
    words += ["data.grayscale=true"] if getattr(dataset, "grayscale", False) else []
    return " ".join(words)


def load(dataset: ImageDataset, shape: tuple[int, ...]) -> tuple[FeatureClassifier, dict] | None:
    """The cached classifier of the dataset's images of `shape` (C, H, W) and its manifest; None when
    there is none. Weights that do not match their manifest are a UserError naming the file."""
    path = manifest_path(dataset, shape)
    if not path.is_file():
        return None
    rebuild = f"rebuild it with `{build_command(dataset)}`"
    try:
        manifest = json.loads(path.read_text())
        weights = path.parent / manifest["weights"]
        payload = weights.read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"the feature classifier's manifest {path} or its weights cannot be read ({exc}); {rebuild}") from exc
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.get("sha256") or weights.stem != digest:
        said = manifest.get("sha256")
        raise UserError(f"the feature classifier {weights} is corrupt: its sha256 is {digest[:12]}..., its manifest {path.name} says {said}; {rebuild}")
    saved = torch.load(io.BytesIO(payload), weights_only=True)
    net = FeatureClassifier(saved["channels"], saved["classes"])
    net.load_state_dict(saved["state_dict"])
    return net.eval(), manifest


def build(dataset: ImageDataset, seed: int = SEED, epochs: int = EPOCHS) -> tuple[FeatureClassifier, dict]:
    """Train the dataset's classifier on its whole training split, measure it on its test split and
    cache it (weights and manifest); returns it and its manifest."""
    start = time.perf_counter()
    images, labels = dataset.load("train")  # uint8 (N, C, H, W), (N,)
    classes = len(dataset.class_names) or int(labels.max()) + 1
    log.info("training the feature classifier of %s on its %d training images (%d epochs)", dataset.name, len(images), epochs)
    net = train_classifier(images, labels, classes, seed, epochs)
    test_images, test_labels = dataset.load("test")
    buffer = io.BytesIO()
    torch.save({"channels": images.shape[1], "classes": classes, "state_dict": net.state_dict()}, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    path = manifest_path(dataset, tuple(images.shape[1:]))
    manifest = {
        "weights": f"{digest}.pt",
        "sha256": digest,
        "dataset": dataset.name,
        "image_shape": list(images.shape[1:]),
        "classes": classes,
        "features": FEATURES,
        "settings": {"seed": seed, "epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "train_images": len(images)},
        "command": f"{build_command(dataset)} seed={seed} epochs={epochs}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "test_accuracy": accuracy(net, test_images, test_labels),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_atomic(path.parent / manifest["weights"], payload)  # the weights first: a manifest never names a missing file
    write_json(path, manifest)
    log.info("feature classifier of %s: test accuracy %.4f, %.0f s, cached as %s", dataset.name, manifest["test_accuracy"], manifest["seconds"], path)
    return net, manifest


def feature_classifier(dataset: ImageDataset, shape: tuple[int, ...]) -> tuple[FeatureClassifier, dict]:
    """The dataset's cached classifier for images of `shape`, built with the default seed and epochs
    the first time (about a minute for MNIST on 2 CPU cores)."""
    return load(dataset, shape) or build(dataset)


def classifier(cfg: DictConfig) -> dict:
    """What `python -m autoencoder.classifier` runs: the classifier of `cfg.data` with `cfg.seed` and
    `cfg.epochs`, taken from the cache when one made so is there and sound, else trained and cached
    (a damaged one is replaced); returns its manifest."""
    validate(cfg, RULES)
    dataset = check_files(cfg.data)
    shape = dataset.image_shape or tuple(dataset.load("test")[0].shape[1:])
    try:
        cached = load(dataset, shape)
    except UserError as exc:
        log.warning("%s: training it again", exc)
        cached = None
    recipe = {"seed": cfg.seed, "epochs": cfg.epochs, "batch_size": BATCH_SIZE, "lr": LR}
    if cached is not None and {key: cached[1]["settings"].get(key) for key in recipe} == recipe:
        manifest = cached[1]
        log.info("feature classifier of %s is cached: %s (test accuracy %.4f)", dataset.name, manifest_path(dataset, shape), manifest["test_accuracy"])
        return manifest
    return build(dataset, cfg.seed, cfg.epochs)[1]
