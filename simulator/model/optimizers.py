"""Optimizer presets: steps to a target loss, extra work per step and extra state, with sources.

A preset says what an optimizer changes relative to AdamW, the baseline every published LLM
recipe in the validation set uses:

- ``steps_factor``: steps to reach AdamW's loss, as a fraction of AdamW's steps. Set only where the
  optimizer's paper reports it for language-model pretraining; the workload's
  ``training.optimizer.steps_factor`` overrides it.
- ``overhead_flops_fraction``: extra FLOPs per step, as a fraction of the step's forward + backward
  FLOPs (Sophia's Hessian estimate). The step time charges it as the same fraction of the step's
  compute time (cost/step.py, ``optimizer_time``).
- ``state_bytes``: optimizer state per parameter beyond bf16 weights and gradients (the memory model's
  table, model/memory.py ``OPTIMIZER_STATE_BYTES``); the optimizer's own element-wise pass is the
  memory-bound update of cost/step.py.

Independent re-evaluations are less favourable than the papers: under a fixed compute budget with a
fully decayed learning rate, Lion's and Sophia's gains over AdamW vanished on BERT and T5 (Kaddour
et al. 2023, "No Train No Gain", NeurIPS). The presets state the papers' figures; docs/levers.md
says how far to trust them.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

from simulator.model.memory import OPTIMIZER_STATE_BYTES

if TYPE_CHECKING:        # annotations only: config validates with the model, not the reverse
    from simulator.config.workload import OptimizerConfig


@dataclass(frozen=True)
class OptimizerPreset:
    kind: str
    steps_factor: float            # steps to AdamW's loss / AdamW's steps
    hessian_interval: int | None   # steps between curvature estimates (None: no estimate)
    estimate_cost: float           # one estimate's FLOPs / one training step's forward + backward
    source: str

    @property
    def state_bytes(self) -> float:
        return OPTIMIZER_STATE_BYTES[self.kind]

    @property
    def overhead_flops_fraction(self) -> float:
        return self.estimate_cost / self.hessian_interval if self.hessian_interval else 0.0


PRESETS = {
    "adamw": OptimizerPreset("adamw", 1.0, None, 0.0,
                             "Loshchilov & Hutter 2019 (decoupled weight decay); the baseline"),
    "adam": OptimizerPreset("adam", 1.0, None, 0.0, "Kingma & Ba 2015"),
    "sgd": OptimizerPreset("sgd", 1.0, None, 0.0,
                           "SGD with momentum; no published LLM-pretraining step ratio is assumed"),
    # Factored second moments (row and column statistics, O(rows + cols) per matrix), no first moment
    # in the T5 recipe: 4 bytes/param of fp32 master weights remain. Quality comparable to Adam; no
    # step-count gain is claimed (Shazeer & Stern 2018, "Adafactor", ICML).
    "adafactor": OptimizerPreset("adafactor", 1.0, None, 0.0, "Shazeer & Stern 2018"),
    # One momentum buffer and a sign update. The paper reports "similar or better" results than
    # AdamW on language modelling and its large savings elsewhere (diffusion, vision); no LM step
    # ratio is assumed (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").
    "lion": OptimizerPreset("lion", 1.0, None, 0.0, "Chen et al. 2023"),
    # Sophia-G: AdamW's loss in 50% of the steps on GPT-2 125M-770M (and GPT NeoX 1.5B, 6.6B in the
    # ICLR version). The diagonal Hessian (Gauss-Newton-Bartlett) is re-estimated every k = 10 steps
    # with one extra forward + backward on a mini-batch; the paper reports ~5% average per-step
    # compute overhead, i.e. an estimate on half the batch (0.5 / 10). The official nanoGPT script
    # re-runs the full batch (1.0 / 10 = 10%): set overhead_flops_fraction: 0.1 for that.
    # Liu et al. 2023, "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model
    # Pre-training" (ICLR 2024), github.com/Liuhong99/Sophia.
    "sophia": OptimizerPreset("sophia", 0.5, 10, 0.5, "Liu et al. 2023 (ICLR 2024)"),
}


def preset(kind: str) -> OptimizerPreset:
    return PRESETS[kind]


def steps_factor(opt: OptimizerConfig) -> float:
    """The user's ``steps_factor`` if given, else the preset's published figure."""
    return opt.steps_factor if opt.steps_factor is not None else PRESETS[opt.kind].steps_factor


def hessian_interval(opt: OptimizerConfig) -> int | None:
    return opt.hessian_interval if opt.hessian_interval is not None else PRESETS[opt.kind].hessian_interval


def overhead_flops_fraction(opt: OptimizerConfig) -> float:
    """Extra FLOPs per step / the step's forward + backward FLOPs (0 for first-order optimizers)."""
    if opt.overhead_flops_fraction is not None:
        return opt.overhead_flops_fraction
    p = PRESETS[opt.kind]
    k = hessian_interval(opt)
    return p.estimate_cost / k if k else 0.0
