"""User-facing errors: input the user can fix is reported as one clear line, never a traceback.

Code anywhere in the package raises `UserError` for such input (config values, paths, data files,
checkpoints); `user_message` finds it, or Hydra's own composition error, inside whatever exception
reached the command (autoencoder.utils.cli prints it).
"""

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException


class UserError(Exception):
    """Input the user can fix; its message says what was wrong and what is allowed."""


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
