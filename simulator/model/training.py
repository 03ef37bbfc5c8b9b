"""How many steps a training run takes and how many tokens it sees."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.model.optimizers import steps_factor

if TYPE_CHECKING:        # annotations only: config validates with the model, not the reverse
    from simulator.config.workload import TrainingConfig


@dataclass(frozen=True)
class TrainingPlan:
    steps: int
    tokens_per_step: int
    tokens: float


def plan(t: TrainingConfig, seq_length: int) -> TrainingPlan | None:
    """Steps to train (scaled by the optimizer's steps_factor, model/optimizers.py), or None if no
    length was given."""
    per_step = t.global_batch_size * seq_length
    if t.train_iters is not None:
        base = t.train_iters
    elif t.train_tokens is not None:
        base = math.ceil(t.train_tokens / per_step)
    else:
        return None
    steps = max(1, math.ceil(base * steps_factor(t.optimizer)))
    return TrainingPlan(steps, per_step, float(steps * per_step))
