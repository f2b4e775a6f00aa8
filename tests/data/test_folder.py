"""A folder of the user's own images (data=folder): classes from its subfolders, its own or a seeded
split, the shape the config asks for, and one line for each thing wrong with the folder.

The images written here are solid colours, which survive any resize: red carries the label, green
the image's index in its class, blue 255 for an image of a folder's own test/ split, else 0."""

import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from autoencoder.data import folder
from autoencoder.data.folder import ImageFolder
from autoencoder.data.images import ImageDataModule, data_module
from autoencoder.evaluation.evaluate import evaluate
from autoencoder.models.sizes import describe_configured
from autoencoder.runs.checkpoints import CONFIG_KEY
from autoencoder.training.run import train
from autoencoder.utils.cli import load_config
from autoencoder.utils.errors import UserError
from tests.conftest import FAST, compose_entry, run_module
from tests.evaluation.test_evaluate import SMALL

CLASSES, PER_CLASS = ("zebra", "ant", "moth"), 20  # written unsorted: the labels follow the sorted names


def write_images(folder: Path, label: int, count: int = PER_CLASS, test: bool = False, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (30, 20), (50 * label, 10 * index, 255 if test else 0)).save(folder / f"{index:02d}{suffix}")


def write_classes(root: Path, test: bool = False) -> Path:
    for name in CLASSES:
        write_images(root / name, sorted(CLASSES).index(name), test=test)
    return root


@pytest.fixture
def classes_folder(tmp_path) -> Path:
    return write_classes(tmp_path / "animals")


def colours(images: torch.Tensor) -> torch.Tensor:
    """The (red, green, blue) of each image, 0-255, read at its corner."""
    return (images[:, :, 0, 0] * 255).round().long()


def ids(images: torch.Tensor) -> set[tuple[int, int]]:
    """(label, index in its class) of each image, from its colour."""
    return {(r // 50, g // 10) for r, g, _ in colours(images).tolist()}


def datamodule(path: Path, **kwargs) -> ImageDataModule:
    dm = ImageDataModule(ImageFolder(str(path), **{"size": 8, **kwargs}))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_labels_and_class_names_from_the_subfolders(classes_folder):
    dm = datamodule(classes_folder)
    assert dm.dataset.class_names == ("ant", "moth", "zebra")
    for split in ("train", "val", "test"):
        images, labels = dm.split(split)
        assert torch.equal(labels, colours(images)[:, 0] // 50)
    one_class = datamodule(classes_folder, classes=["Zebra"])
    assert one_class.dataset.classes == [2] and one_class.split("train")[1].eq(2).all() and one_class.split("val")[1].eq(2).all()
    assert set(one_class.split("test")[1].tolist()) == {0, 1, 2}  # the test set keeps every class
    with pytest.raises(UserError, match=r"^data.classes: 'cats' is not a class of ImageFolder \(its classes: 0 ant, 1 moth, 2 zebra; give names"):
        ImageFolder(str(classes_folder), classes=["cats"])


def test_a_flat_folder_is_one_class_named_after_it(tmp_path):
    write_images(tmp_path / "flowers", label=0, count=10)
    dm = datamodule(tmp_path / "flowers", val_size=2)
    assert dm.dataset.class_names == ("flowers",)
    assert [len(dm.split(s)[1]) for s in ("train", "val", "test")] == [6, 2, 2] and dm.split("train")[1].eq(0).all()


def test_the_seeded_split_is_deterministic_disjoint_and_covers_every_image(classes_folder):
    a, b, c = datamodule(classes_folder), datamodule(classes_folder), datamodule(classes_folder, split_seed=1)
    parts = [ids(a.split(s)[0]) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [len(a.split(s)[0]) for s in ("train", "val", "test")] == [43, 5, 12]  # no image twice
    assert set.union(*parts) == {(label, index) for label in range(3) for index in range(PER_CLASS)}
    assert ids(b.split("test")[0]) == parts[2] and ids(b.split("val")[0]) == parts[1]
    assert ids(c.split("test")[0]) != parts[2]


def test_the_folders_own_train_and_test_split_is_used(tmp_path):
    write_classes(tmp_path / "own" / "train")
    write_classes(tmp_path / "own" / "test", test=True)
    dm = datamodule(tmp_path / "own", val_size=6)
    assert dm.dataset.class_names == ("ant", "moth", "zebra")
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [54, 6, 60]
    assert colours(dm.split("test")[0])[:, 2].eq(255).all()
    assert colours(dm.split("train")[0])[:, 2].eq(0).all() and colours(dm.split("val")[0])[:, 2].eq(0).all()
    (tmp_path / "own" / "test" / "moth").rename(tmp_path / "own" / "test" / "moths")
    with pytest.raises(UserError, match=r"^the classes of .*/own/test \(ant, moths, zebra\) are not those of train/ \(ant, moth, zebra\)"):
        ImageFolder(str(tmp_path / "own"))


def test_val_size_is_a_fraction_or_a_number_of_training_images(classes_folder):
    assert len(datamodule(classes_folder, val_size=0.25).split("val")[0]) == 12  # of the 48 left by the test split
    assert len(datamodule(classes_folder, val_size=7).split("val")[0]) == 7


def test_size_and_grayscale_give_the_shape_and_the_config_follows(classes_folder):
    assert datamodule(classes_folder, size=20).split("test")[0].shape == (12, 3, 20, 20)
    assert datamodule(classes_folder, size=12, grayscale=True).split("test")[0].shape == (12, 1, 12, 12)
    for overrides, shape in ((["data.size=32"], [3, 32, 32]), (["data.size=16", "data.grayscale=true"], [1, 16, 16])):
        cfg = load_config("config", ["data=folder", f"data.path={classes_folder}", *overrides])
        with open_dict(cfg):
            cfg.output_dir = "outputs/test"
        assert list(cfg.data.image_shape) == list(cfg.model.input_shape) == shape
        size = "x".join(map(str, shape))
        assert describe_configured(cfg)[-1] == f"output {size} equals input {size}"
        assert data_module(cfg.data).split("train")[0].shape[1:] == tuple(shape)


def test_every_extension_is_read_in_any_case(tmp_path):
    suffixes = (".png", ".JPG", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".TIFF")
    for label, suffix in enumerate(suffixes):
        write_images(tmp_path / "formats" / f"{label}{suffix[1:]}", label=label % 5, count=3, suffix=suffix)
    (tmp_path / "formats" / "0png" / "notes.txt").write_text("not an image, not read\n")
    dm = datamodule(tmp_path / "formats", val_size=1)
    images, labels = torch.cat([dm.split(s)[0] for s in ("train", "val", "test")]), torch.cat([dm.split(s)[1] for s in ("train", "val", "test")])
    assert len(images) == 3 * len(suffixes)
    red = torch.tensor([50 * (int(dm.dataset.class_names[label][0]) % 5) for label in labels.tolist()])
    assert (colours(images)[:, 0] - red).abs().max() <= 8  # JPEG and WebP are lossy: near the colour written


def test_the_memory_check_stops_before_decoding(classes_folder, monkeypatch):
    monkeypatch.setattr(folder, "available_memory", lambda: 1000)
    with pytest.raises(UserError) as error:
        datamodule(classes_folder, in_memory=True)
    assert str(error.value) == (
        f"the 60 images of {classes_folder} at 3x8x8 need 22.5 KiB of memory (11.2 KiB decoded, and the train/val copies) "
        "but 1000.0 B is available; lower data.size or set data.grayscale=true, or data.in_memory=auto to read them from a cache file"
    )
    assert not (classes_folder / ".autoencoder-cache").exists()


def test_each_problem_with_the_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    write_images(tmp_path / "bad", label=0, count=5)
    (tmp_path / "bad" / "x.png").write_bytes(b"not an image at all")
    write_classes(tmp_path / "empty_class")
    (tmp_path / "empty_class" / "owl").mkdir()
    write_classes(tmp_path / "half" / "train")
    (tmp_path / "a_file").write_text("")
    problems = {
        "missing": rf"data.path {tmp_path}/missing does not exist; give the folder that holds your images",
        "a_file": rf"data.path {tmp_path}/a_file is not a folder",
        "empty": rf"data.path {tmp_path}/empty holds no image files \(the files read: .png, .jpg, .jpeg, .bmp, .gif, .webp, .tif, .tiff, in any case\)",
        "bad": rf"{tmp_path}/bad/x.png is not an image Pillow can read \(cannot identify image file .*\); replace or remove it",
        "empty_class": rf"class folder {tmp_path}/empty_class/owl holds no image files \(the files read: .*\); add images or remove the folder",
        "half": rf"data.path {tmp_path}/half has train/ but no test/; give both",
    }
    for name, message in problems.items():
        with pytest.raises(UserError, match=f"^{message}") as error:
            datamodule(tmp_path / name)
        assert "\n" not in str(error.value)


def test_train_and_evaluate_on_a_folder(classes_folder, tmp_path):
    fast = [o for o in FAST if not o.startswith("data.")]  # the MNIST files' keys: a folder has none
    overrides = ["data=folder", f"data.path={classes_folder}", "data.size=16", "data.batch_size=16", "logger=none", *fast]
    cfg = load_config("config", overrides)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / "run")
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["test_loss"] is not None
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert checkpoint[CONFIG_KEY]["data"]["path"] == str(classes_folder)
    result = evaluate(compose_entry("evaluate", tmp_path / "evaluation", f"ckpt_path={metrics['best_checkpoint']}", *SMALL, "latent.tsne=false"))
    assert result["data"] == "ImageFolder" and list(result["reconstruction"]["mse_per_class"]) == ["ant", "moth", "zebra"]
    assert "| class | ant | moth | zebra |" in (tmp_path / "evaluation" / "evaluation.md").read_text()
    moved = tmp_path / "moved"
    shutil.copytree(classes_folder, moved)  # the run's folder, found elsewhere: data.path says where
    result = run_module("autoencoder.encode", f"ckpt_path={metrics['best_checkpoint']}", f"data.path={moved}", f"hydra.run.dir={tmp_path}/codes", cwd=tmp_path)
    assert result.returncode == 0 and f"written to {tmp_path}/codes/test_codes.npy" in result.stdout, result.stderr[-2000:]
