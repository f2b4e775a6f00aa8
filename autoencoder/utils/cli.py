"""What every command shares: third-party notes kept off the screen, and bad input reported as one
line with exit code 2 instead of a traceback (AUTOENCODER_DEBUG=1 shows the traceback).

Each command is a function of its config made a command by `@hydra_command("<config>")`, which
runs it inside `command()`. Nothing here runs at import, so that importing the library leaves the
caller's warning filters and logging as they were.
"""

import functools
import logging
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser  # the parser @hydra.main reads the command line with
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from autoencoder import CONFIG_DIR
from autoencoder.utils.errors import Interrupted, Stopped, UserError, exception_chain, user_message

EXIT_USER_ERROR = 2
UNKNOWN_KEY = re.compile(r"Could not override '([^']+)'")  # Hydra's words for a key the config lacks

# Harmless notes from third-party code that would otherwise print on every run.
QUIET_WARNINGS = (
    r"Precision .* is not supported by the model summary",
    r".*isinstance\(treespec, LeafSpec\)",
    # Batches are gathered from tensors in memory: worker processes would only copy the data set.
    r".*does not have many workers",
    # Under DDP the epoch's train loss and speed are the first process's: syncing train/loss, which
    # is also logged per step, would cost a collective every step (val and test losses are synced).
    r"It is recommended to use `self.log\('(train/loss|speed/[a-z_]+)', \.\.\., sync_dist=True\)`",
    # Few batches an epoch (a subset, a small dataset): the epoch's mean train loss is logged all the same.
    r".*is smaller than the logging interval",
)


def _no_advertisement(record: logging.LogRecord) -> bool:
    """Lightning's 'Tip: ... try installing' lines recommend a hosted service, not this run."""
    return not record.getMessage().startswith("💡 Tip")


def _one_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the console shows it: what it says, not the site-packages line that said it."""
    return f"warning: {message}\n"


class ConsoleFormatter(logging.Formatter):
    """Log records on the console as plain lines; warnings and errors say so. The run folder's
    log file keeps Hydra's full format, with time and logger."""

    @override
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def quiet_third_party() -> None:
    """Install the warning filters and the log filter above, show warnings in one line, and keep
    Lightning's informational lines (accelerators found, checkpoint restored, the loop stopped)
    off the console: its warnings still show (idempotent)."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    warnings.formatwarning = _one_line
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _no_advertisement not in rank_zero.filters:
        rank_zero.addFilter(_no_advertisement)


def _stop(signum: int, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
    raise Stopped(signum)


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """Within `with`, SIGINT and SIGTERM raise `Stopped`, also where SIGINT came ignored (a command
    started in the background with `&`); the previous handlers come back at the end. A training
    puts its own handlers in place while it runs. Outside the main thread, where Python cannot set
    handlers, the signals keep theirs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python


@contextmanager
def command() -> Iterator[None]:
    """The body of a command: quiet third-party notes; a user error raised inside becomes one line
    on stderr and exit code 2, a run stopped by a signal one line and exit code 128 + the
    signal's number (Ctrl-C: 130, SIGTERM: 143), anything else keeps its traceback.

    Used around each job of a command and around the whole command (`hydra_command`): Hydra
    reports a job's exception with a line of its own but lets SystemExit through untouched."""
    quiet_third_party()
    try:
        with stopping_on_signals():
            yield
    except (Interrupted, Stopped) as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything the user caused
        message = user_message(exc)
        if message is None or os.environ.get("AUTOENCODER_DEBUG") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def hydra_command(config_name: str, added: tuple[str, ...] = ()) -> Callable[[Callable[[DictConfig], object]], Callable[[], None]]:
    """Make a command of a function of its config, `@hydra_command("config")`: what
    `python -m autoencoder.<command>` and the console script `autoencoder-<command>` run.

    It is Hydra's `@hydra.main` on conf/<config_name>.yaml, with each job run inside `command()`
    (every job of a sweep, in parallel workers too) and the whole command as well, so that
    Hydra's own errors become one line: an unknown option (`--foo`) and an unknown key, which
    gets the closest known keys ("did you mean noise?").

    The command line's settings go through `as_override`: a node's YAML names only the settings it
    chooses, and `model.latent_dim=2` sets one it leaves to its class's default. `added` names
    nodes that the config leaves to what the command reads (a checkpoint's run has its own
    `data`): their group is added to the config (`data=kmnist` as `+data=kmnist`), and the command
    decides what it means."""

    def wrap(task: Callable[[DictConfig], object]) -> Callable[[], None]:
        @functools.wraps(task)  # Hydra names the job (and its log file) after the task's module
        def job(cfg: DictConfig) -> object:
            with command():
                return task(cfg)

        hydra_main = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(job)

        @functools.wraps(task)
        def cli() -> None:
            sys.stdout.reconfigure(line_buffering=True)  # epoch lines show up at once in piped logs too
            os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's printer
            with command():
                check_options(sys.argv[1:])
                sys.argv[1:] = [as_override(arg, added) for arg in sys.argv[1:]]
                try:
                    hydra_main()
                except Exception as exc:  # noqa: BLE001 - only Hydra's unknown-key error is reworded
                    hint = unknown_key(exc, config_name, sys.argv[1:])
                    if hint is None:
                        raise
                    raise hint from exc

        return cli

    return wrap


def as_override(arg: str, added: tuple[str, ...] = ()) -> str:
    """A command-line setting as Hydra takes it. A key inside a node (`model.latent_dim=2`) is
    set or added (Hydra's `++`): a node's YAML leaves out the settings that keep their class's
    default, and validation refuses a key that no class or rule knows, with the closest ones.
    Picking the group of one of the `added` nodes adds it (`+data=kmnist`). Hydra's own keys and
    Hydra's explicit forms (`+`, `++`, `~`) pass unchanged."""
    key = arg.split("=", 1)[0]
    if "=" not in arg or arg.startswith(("+", "~", "-")) or key.startswith("hydra."):
        return arg
    if "." in key:
        return f"++{arg}"
    return f"+{arg}" if key in added else arg


def load_config(config_name: str, overrides: Iterable[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """conf/<config_name>.yaml composed with command-line settings, as its command takes them.
    Inside a running command (the study composes its models' configs) through that command's Hydra,
    which has the same config folder and refuses to be initialised twice."""
    settings = [as_override(o) for o in overrides]
    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides=settings, return_hydra_config=return_hydra_config)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=settings, return_hydra_config=return_hydra_config)


def check_options(argv: list[str]) -> None:
    """Refuse an option Hydra does not know in one line (argparse would print its usage first)."""
    parser = get_args_parser()

    def refuse(message: str) -> None:
        options = ", ".join(o for action in parser._actions for o in action.option_strings if o.startswith("--"))
        raise UserError(f"{message}; the options are {options}, and settings are given as key=value")

    parser.error = refuse
    parser.parse_args(argv)


def unknown_key(exc: Exception, config_name: str, argv: list[str]) -> UserError | None:
    """A UserError naming the closest known keys when `exc` is Hydra's refusal of a key that the
    config does not have (`nosie=0.3`); None for any other error. The keys are those of the
    config composed with the command line's group choices (`variant=vae` brings variant.beta)."""
    found = next((m for e in exception_chain(exc) if (m := UNKNOWN_KEY.search(str(e)))), None)
    if found is None:
        return None
    key = found.group(1)
    choices = [a for a in argv if "=" in a and not a.startswith("-") and "." not in a.split("=")[0] and a.split("=")[0].lstrip("+~") != key]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=choices, return_hydra_config=key.startswith("hydra"))
    except Exception:  # noqa: BLE001 - another bad override: no suggestion, Hydra's error stands
        return None
    close = closest(key, _keys(OmegaConf.to_container(cfg, resolve=False)))
    hint = f"did you mean {' or '.join(close)}?" if close else "none is close to it (--cfg job lists them all)"
    return UserError(f"unknown key '{key}' in conf/{config_name}.yaml and the groups chosen: {hint}")


def closest(key: str, known: Iterable[str]) -> list[str]:
    """The known keys at its depth (`denoising.noise` for `denoising.nosie`, not the node
    `denoising`) that take the fewest edits to reach from `key`, at most 3 and a third of it."""
    distances = {k: edits(key, k) for k in known if k.count(".") == key.count(".")}
    fewest = min(distances.values(), default=0)
    return sorted(k for k, d in distances.items() if d == fewest and d <= max(1, len(key) // 3))[:3]


def edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn `a` into `b` (the
    optimal string alignment distance): a typo such as `nosie` for `noise` is one edit."""
    previous, row = None, list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        before, previous, row = previous, row, [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[-1]


def _keys(node: dict, prefix: str = "") -> Iterator[str]:
    """Every key of a nested config, as dotted paths, the nodes' own too (`data`, `data.batch_size`)."""
    for name, value in node.items():
        yield prefix + str(name)
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{name}.")


def overridden(cfg: DictConfig, node: str, hydra_cfg: DictConfig) -> dict:
    """The keys of `cfg.<node>` set on the command line (`data.data_dir=...`), with their values."""
    prefix = f"{node}."
    keys = [o.split("=", 1)[0].lstrip("+") for o in hydra_cfg.overrides.task if "=" in o and not o.startswith("~")]
    names = [key.removeprefix(prefix) for key in keys if key.startswith(prefix)]
    return {name: cfg[node][name] for name in names if "." not in name}
