"""What this machine's hardware allows: whether an accelerator setting means a GPU, and the fastest
safe training precision for it.

bf16 autocast roughly doubles training speed on CPUs with native bf16 (AVX512-BF16 or AMX) and on
recent GPUs, and keeps fp32's dynamic range, so it needs no loss scaling. CPUs without bf16 only
emulate it (slower than fp32), and older GPUs get fp16 with loss scaling. Configs use it as
`precision: ${fastest_precision:cpu}` (registered in autoencoder.config.resolvers).

torch is imported where CUDA is asked about, not with the module: composing and checking a config
then costs no torch import (a missing dataset is reported at once).
"""

from functools import cache
from pathlib import Path

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


@cache
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX (read from /proc/cpuinfo; False where it is absent)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uses_gpu(accelerator: str) -> bool:
    """Whether a Lightning accelerator setting ends up on a GPU here."""
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def fastest_precision(accelerator: str = "auto") -> str:
    """A Lightning precision string: 'bf16-mixed', '16-mixed' or '32-true'."""
    if uses_gpu(accelerator):
        import torch

        if not torch.cuda.is_available():
            return "32-true"  # let Lightning report the missing GPU itself
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
