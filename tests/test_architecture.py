"""The layout's promises: thin commands over a library that never imports them, layers that import
downwards only, light modules where a command must answer fast, and no side effects when any
module is imported."""

import ast
import pkgutil
import subprocess
import sys

import autoencoder
from autoencoder import PACKAGE_DIR

# The library's layers, lowest first. A package imports from lower layers only, never from one beside
# it: training and evaluation know nothing of each other, and workflows (train then evaluate, the
# anomaly table) and sweeps sit on both.
LAYERS = (("utils",), ("config",), ("data", "models"), ("runs",), ("training", "evaluation"), ("workflows", "sweeps"))
# Modules that load neither torch nor Lightning: a command checks its config and the data's files
# with them in a second or two, and the sweep summary reads run records without a model.
LIGHT = (
    "autoencoder.train",
    "autoencoder.utils.cli",
    "autoencoder.config.validation",
    "autoencoder.data.dataset",
    "autoencoder.data.mnist",
    "autoencoder.data.cifar",
    "autoencoder.runs.record",
    "autoencoder.sweeps.summary",
)
COMMANDS = ("train", "evaluate", "encode", "anomaly", "shapes", "summarize", "bench", "time_to_quality", "sample", "classifier", "code_prior", "study")
LIBRARY = [m.name for m in pkgutil.walk_packages([str(PACKAGE_DIR)], "autoencoder.") if m.name.count(".") > 1 or m.ispkg]


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def test_every_command_is_a_module_at_the_top_and_the_library_never_imports_one():
    top = {m.name for m in pkgutil.iter_modules([str(PACKAGE_DIR)]) if not m.ispkg}
    assert top == set(COMMANDS)
    commands = {f"autoencoder.{c}" for c in COMMANDS}
    for path in PACKAGE_DIR.glob("*/**/*.py"):
        assert not imported_modules(path) & commands, path


def test_each_layer_imports_only_from_the_layers_below_it():
    rank = {package: i for i, packages in enumerate(LAYERS) for package in packages}
    assert set(rank) == {m.name for m in pkgutil.iter_modules([str(PACKAGE_DIR)]) if m.ispkg}
    for path in PACKAGE_DIR.glob("*/**/*.py"):
        package = path.relative_to(PACKAGE_DIR).parts[0]
        for name in imported_modules(path):
            target = name.split(".")[1] if name.startswith("autoencoder.") else None
            if target in rank and target != package:
                assert rank[target] < rank[package], f"{path.relative_to(PACKAGE_DIR)} imports {name}: {target} is not below {package}"


def test_light_modules_load_neither_torch_nor_lightning():
    heavy = "sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning'})"
    code = f"import importlib, sys; [importlib.import_module(m) for m in {LIGHT!r}]; print({heavy})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr[-2000:] or result.stdout[:500]


def test_commands_are_thin():
    for command in COMMANDS:
        path = PACKAGE_DIR / f"{command}.py"
        tree = ast.parse(path.read_text())
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert len(functions) == 1 and len(path.read_text().splitlines()) <= 30, path


IMPORT_ALL = f"""
import logging, warnings
import matplotlib
matplotlib.use("svg")
import hydra, lightning, sklearn, scipy, tensorboard, torch, torchvision, torchmetrics, omegaconf  # third parties may set their own
filters = list(warnings.filters)
names = ("", "lightning.pytorch", "lightning.pytorch.utilities.rank_zero")
handlers = {{name: (list(logging.getLogger(name).filters), list(logging.getLogger(name).handlers)) for name in names}}
import importlib
for name in {LIBRARY + [f"autoencoder.{c}" for c in COMMANDS] + ["benchmarks.suite", "benchmarks.runs", "benchmarks.time_to_quality"]!r}:
    importlib.import_module(name)
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]
assert handlers == {{name: (list(logging.getLogger(name).filters), list(logging.getLogger(name).handlers)) for name in handlers}}
print("clean")
"""


def test_importing_any_module_leaves_backend_warnings_and_logging_alone(tmp_path):
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "clean", result.stderr[-2000:]
    assert len(LIBRARY) > 20 and autoencoder.CONFIG_DIR.is_dir()
