"""What every command shares: third-party notes kept off the screen, and bad input reported as one
line with exit code 2 instead of a traceback (AUTOENCODER_DEBUG=1 shows the traceback).

Nothing here runs at import: the commands call `command()` around their body, so that importing
the library leaves the caller's warning filters and logging as they were.
"""

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from omegaconf import DictConfig
from typing_extensions import override

from autoencoder.utils.errors import Interrupted, user_message

EXIT_USER_ERROR = 2

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


@contextmanager
def command() -> Iterator[None]:
    """The body of a command: quiet third-party notes; a user error raised inside becomes one line
    on stderr and exit code 2, a run stopped by a signal one line and exit code 128 + the
    signal's number, anything else keeps its traceback.

    Used inside each `@hydra.main` function (it runs in every job, parallel sweep workers too) as
    well as by `run_cli`: Hydra reports a job's exception with a line of its own but lets
    SystemExit through untouched."""
    quiet_third_party()
    try:
        yield
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything the user caused
        message = user_message(exc)
        if message is None or os.environ.get("AUTOENCODER_DEBUG") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def run_cli(main: Callable[[], object]) -> None:
    """Run a `@hydra.main` function as a command: Hydra's config errors also become one line."""
    sys.stdout.reconfigure(line_buffering=True)  # epoch lines show up at once in piped logs too
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's printer
    with command():
        main()


def overridden(cfg: DictConfig, node: str, hydra_cfg: DictConfig) -> dict:
    """The keys of `cfg.<node>` set on the command line (`data.data_dir=...`), with their values."""
    prefix = f"{node}."
    keys = [o.split("=", 1)[0].lstrip("+") for o in hydra_cfg.overrides.task if "=" in o and not o.startswith("~")]
    names = [key.removeprefix(prefix) for key in keys if key.startswith(prefix)]
    return {name: cfg[node][name] for name in names if "." not in name}
