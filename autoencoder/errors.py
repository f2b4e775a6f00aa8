"""User-facing errors: bad input becomes one clear line and a non-zero exit, never a traceback.

Code anywhere in the package raises `UserError` for input the user can fix (config values, paths,
data files, checkpoints). `exit_on_user_error` turns those errors, and Hydra's own composition
errors, into a single line on stderr and exit code 2; `run_cli` runs a Hydra entry point that way.
Set AUTOENCODER_DEBUG=1 to see the traceback.
"""

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Input the user can fix; its message says what was wrong and what is allowed."""


def as_list(value: object) -> list:
    """A config value that may be one item or a list (e.g. `digits=3` or `digits=[3,5]`) as a list."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


def distinct_ints(value: object, allowed: range) -> list[int] | None:
    """`value` as a list when it is a non-empty set of distinct integers within `allowed`, else
    None (the caller says what the setting means in its error)."""
    values = as_list(value)
    ok = values and all(isinstance(v, int) and not isinstance(v, bool) and v in allowed for v in values)
    return values if ok and len(set(values)) == len(values) else None


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and the ones it was raised from, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user caused, or None for a genuine bug."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, UserError):
            return str(e)
    for e in chain:
        if isinstance(e, MissingConfigException) and e.options is not None:
            group, _, option = (e.missing_cfg_file or "").rpartition("/")
            allowed = ", ".join(sorted(e.options))
            return f"unknown {group or 'config'} option '{option}' (allowed: {allowed})"
    for e in chain:
        if isinstance(e, (HydraException, OmegaConfBaseException)):
            return " ".join(str(e).split())
    for e in chain:  # a folder that cannot be written, a full disk, ...
        if isinstance(e, OSError) and e.filename:
            return f"cannot write or read {e.filename}: {e.strerror or type(e).__name__}; pick a folder you can write to, or free space"
    return None


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a user error raised inside into one line on stderr and exit code 2; re-raise the rest.

    Used around the body of each `@hydra.main` function as well as in `run_cli`: Hydra reports an
    exception from a job with a line of its own, but lets SystemExit through untouched."""
    try:
        yield
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
    with exit_on_user_error():
        main()
