"""Inference over a whole split without autograd, a batch at a time (bounded memory)."""

from collections.abc import Callable

import torch
from torch import Tensor


@torch.no_grad()
def in_batches(fn: Callable[[Tensor], Tensor], inputs: Tensor, batch_size: int = 1000) -> Tensor:
    """`fn` applied to `inputs` (N, ...) a batch at a time; the outputs concatenated as float32."""
    return torch.cat([fn(chunk).float() for chunk in inputs.split(batch_size)])
