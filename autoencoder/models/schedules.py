"""Learning-rate schedules that torch builds from two of its own (conf/scheduler/)."""

from typing import Annotated

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from autoencoder.config.validation import number


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup: Annotated[float, number(0, below=1)] = 0.05,
    start_factor: Annotated[float, number(above=0, high=1)] = 0.01,
    eta_min: Annotated[float, number(0)] = 0.0,
) -> LRScheduler:
    """Linear warm-up from `start_factor` x the optimizer's rate to that rate over the first
    `warmup` fraction of `total_steps`, then cosine annealing to `eta_min` over the rest."""
    warmup_steps = round(warmup * total_steps)
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=eta_min)
    if warmup_steps == 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup_steps])
