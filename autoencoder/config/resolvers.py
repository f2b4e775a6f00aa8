"""The config's own resolvers, registered when the package is imported (before Hydra composes).

- `${fastest_precision:<accelerator>}`: the trainer's default precision (autoencoder.utils.hardware).
- `${run_id:}`: this process's id, so that two runs started in the same second, or the jobs of two
  sweeps, never share a folder (`outputs/<day>/<time>_<run_id>`). Cached like Hydra's `${now:}`:
  the jobs of a sweep see the value of the process that launched them.
- `${first_set:<a>,<b>}`: a unless it is null, else b (a resumed run's folder, else a new one).
- `${sqlite_folder:<path>}`: the folder, created if missing, as an absolute path; SQLite cannot
  create the folder of its database (the Optuna study's storage).
- `${channels:<grayscale>}`: 1 for grayscale images, else 3 (a colour dataset's `image_shape`).
"""

import os
from pathlib import Path

from omegaconf import OmegaConf

from autoencoder.utils.hardware import fastest_precision


def _sqlite_folder(path: str) -> str:
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


OmegaConf.register_new_resolver("fastest_precision", fastest_precision, replace=True)
OmegaConf.register_new_resolver("run_id", lambda: str(os.getpid()), use_cache=True, replace=True)
OmegaConf.register_new_resolver("first_set", lambda a, b: b if a is None else a, replace=True)
OmegaConf.register_new_resolver("channels", lambda grayscale: 1 if grayscale else 3, replace=True)
OmegaConf.register_new_resolver("sqlite_folder", _sqlite_folder, use_cache=True, replace=True)
