"""What a data config (conf/data/<name>.yaml) builds: a dataset, its files and its settings.

A dataset is a subclass of `ImageDataset` that provides:

- `prepare()`: make its files available (download them, or raise a UserError saying where to put
  them);
- `load(split)`: images (N, C, H, W) uint8 and labels (N,) int64 of its own `train` or `test`
  split, read from those files and checked;
- `class_names`, label by label, so that `data.classes` may name classes.

The settings every dataset shares (split, batches, classes, binarize; `image_shape`, which the
model's `input_shape` follows) are kept here for `autoencoder.data.images.ImageDataModule`, which
does the rest. The file datasets' modules (mnist, cifar) import torch only where they read images,
so that `prepare()` runs, and missing files are reported, before the seconds it takes to load torch
and Lightning (`check_files`); a folder of images loads torch to split it (about 4 s to its error).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from hydra.utils import instantiate
from omegaconf import DictConfig

from autoencoder import REPO_DIR
from autoencoder.config.validation import CLASSES, FRACTION, Rule, anything_of, integer, integers, validate
from autoencoder.utils.errors import UserError

DATA_ENV = "AUTOENCODER_DATA_DIR"
# The data classes of runs trained when a data config built its LightningDataModule directly: such
# runs' configs still load (evaluated, resumed), their data built by the datasets that replaced them.
RENAMED = {
    f"autoencoder.data.{module}.{old}": f"autoencoder.data.{module}.{new}"
    for module, old, new in (
        ("mnist", "MNISTDataModule", "MNIST"),
        ("mnist", "FashionMNISTDataModule", "FashionMNIST"),
        ("mnist", "KMNISTDataModule", "KMNIST"),
        ("cifar", "CIFAR10DataModule", "CIFAR10"),
        ("folder", "FolderDataModule", "ImageFolder"),
    )
}


def data_folder(data_dir: str | None) -> Path:
    """Where the dataset files are: `data_dir`, else data/ in the repository."""
    return Path(data_dir).expanduser() if data_dir else REPO_DIR / "data"


def _key(name: str) -> str:
    """A class name as the user may type it: `Ankle boot`, `ankle_boot` and `ankleboot` are one."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


VAL_SIZE = anything_of(integer(1), Rule(FRACTION.accepts, "a fraction in (0, 1) of the training images"))


class ImageDataset:
    """A dataset of labelled images and the settings the data module splits and batches it with:

    - `batch_size`: images per training batch (evaluation batches are larger);
    - `val_size`: images of the training split held out for validation, or a fraction of them;
    - `train_size`: train on only the first this many of the rest, shuffled (null: all);
    - `split_seed`: the seed of that split, `shuffle_seed` the seed of each epoch's batch order;
    - `classes`: train and validate on these classes only, by name or label ([3] for one-class
      anomaly detection; null: all); the test set keeps them all;
    - `image_shape`: (C, H, W), which the model's `input_shape` follows;
    - `binarize`: binary images for likelihoods in nats: each pixel 1 with its intensity as
      probability, training batches drawn afresh (dynamic binarisation), val and test once with
      `split_seed` (with variant=vae, use loss=bce: a Bernoulli likelihood)."""

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        batch_size: Annotated[int, integer(1)] = 64,
        val_size: Annotated[int | float, VAL_SIZE] = 5000,
        train_size: Annotated[int | None, integer(1, null=True)] = None,
        split_seed: Annotated[int, integer(0)] = 0,
        shuffle_seed: Annotated[int, integer(0)] = 0,
        classes: Annotated[Sequence[int | str] | None, CLASSES] = None,
        image_shape: Annotated[Sequence[int] | None, integers(1, length=3, null=True)] = None,
        binarize: bool = False,
    ):
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_size = train_size
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.binarize = binarize
        self.classes = sorted(self.labels_of(classes)) if classes is not None else None

    @property
    def name(self) -> str:
        return type(self).__name__

    def labels_of(self, classes: Sequence[int | str], key: str = "data.classes") -> list[int]:
        """The labels of classes given by name or label; anything else is a UserError (on the
        setting `key`) listing them."""
        keys = {_key(name): label for label, name in enumerate(self.class_names)}
        labels = []
        for c in classes:
            label = c if isinstance(c, int) and not isinstance(c, bool) else keys.get(_key(c)) if isinstance(c, str) else None
            if label is None or not 0 <= label < (len(self.class_names) or label + 1):
                names = ", ".join(name if name == str(i) else f"{i} {name}" for i, name in enumerate(self.class_names))
                raise UserError(f"{key}: {c!r} is not a class of {self.name} (its classes: {names}; give names or labels)")
            labels.append(label)
        return labels

    def prepare(self) -> None:
        """Make the files available, or raise a UserError saying where to put them."""
        raise NotImplementedError

    def load(self, split: str):
        """Images (N, C, H, W) uint8 and labels (N,) int64 (torch tensors) of the `train` or `test` split."""
        raise NotImplementedError


def renamed_data_classes(cfg: DictConfig) -> DictConfig:
    """A run's config with an old data class (RENAMED) replaced by its dataset, in place."""
    if "data" in cfg and cfg.data.get("_target_") in RENAMED:
        cfg.data._target_ = RENAMED[cfg.data._target_]
    return cfg


def check_files(data: DictConfig) -> ImageDataset:
    """The dataset of the data config `data` with its files ready: its settings validated, then
    its files found or downloaded. Needs neither torch nor Lightning, so a command can call it
    before loading them."""
    validate(data, prefix="data.")
    dataset = instantiate(data, _convert_="all")
    dataset.prepare()
    return dataset
