"""Which layers' forward passes rerun in the backward under Megatron's full-recompute methods."""
from __future__ import annotations


def recomputed_fraction(layout, stage: int | None = None) -> float:
    """Share of a stage's (or, with ``stage=None``, the model's) transformer layers whose forward is
    recomputed under full recomputation: every layer with the uniform method, the first
    ``recompute_num_layers`` of each model chunk with the block method; 0 without full recompute."""
    if layout.recompute != "full":
        return 0.0
    if (layout.recompute_method or "uniform") != "block":
        return 1.0
    n = layout.recompute_num_layers or 1
    stages = range(len(layout.stage_layers)) if stage is None else (stage,)
    total = sum(layout.stage_layers[i] for i in stages)
    done = sum(min(n, c) for i in stages for c in layout.chunk_layers(i))
    return done / total if total else 0.0
