"""The space of parallel layouts for a model on N GPUs, enumerated by integer arithmetic alone.

A Structure fixes the shape (TP, PP and its stage split, virtual stages, CP, EP, DP, micro batch);
a Layout adds the memory-saving choices (ZeRO stage, activation recomputation). The rules mirror
simulator/config/layout.py, which stays the judge: the search re-checks every candidate with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from simulator.model.arch import Arch

RECOMPUTE = ("none", "selective", "full")     # in order of cost: each re-runs more of the forward


def recompute_resets(recompute: str) -> dict[str, object]:
    """Parallelism fields clearing the recomputation options that do not apply to ``recompute``:
    Megatron's full-recompute method and layer count under anything but full, torchtitan's matmul
    rerun under anything but selective_op, Megatron-Core's recompute_modules under anything but
    selective (so a workload's own options never invalidate the candidates)."""
    out: dict[str, object] = {}
    if recompute != "full":
        out.update(recompute_method=None, recompute_num_layers=None)
    if recompute != "selective_op":
        out["recompute_matmuls"] = "none"
    if recompute != "selective":
        out["recompute_modules"] = None
    return out
P = "parallelism."


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


@dataclass(frozen=True)
class Space:
    """Restrictions of the search space (None: every valid value)."""

    tp: tuple[int, ...] | None = None
    pp: tuple[int, ...] | None = None
    vpp: tuple[int, ...] | None = None
    cp: tuple[int, ...] | None = None
    ep: tuple[int, ...] | None = None
    micro_batch: tuple[int, ...] | None = None
    zero: tuple[int, ...] = (0, 1, 2, 3)
    recompute: tuple[str, ...] = RECOMPUTE
    schedule: str | None = None          # the workload's non-interleaved schedule, if it names one

    def allows(self, dim: str, value: int) -> bool:
        allowed = getattr(self, dim)
        return allowed is None or value in allowed


@dataclass(frozen=True, order=True)
class Structure:
    tp: int
    pp: int
    first: int | None       # layers of the first / last stage when the split is uneven
    last: int | None
    cp: int
    ep: int
    dp: int
    micro_batch: int
    vpp: int


@dataclass(frozen=True, order=True)
class Layout:
    """One candidate layout: a Structure plus ZeRO stage and recomputation."""

    structure: Structure
    zero: int
    recompute: str
    schedule: str | None = field(default=None, compare=False)

    def overrides(self) -> tuple[str, ...]:
        """`--set` texts that give a workload this layout (all parallelism keys, none left over)."""
        s = self.structure
        vpp = s.vpp if s.vpp > 1 else None
        schedule = "interleaved_1f1b" if vpp else self.schedule
        return (f"{P}tensor_model_parallel_size={s.tp}", f"{P}pipeline_model_parallel_size={s.pp}",
                f"{P}virtual_pipeline_model_parallel_size={_yaml(vpp)}", f"{P}context_parallel_size={s.cp}",
                f"{P}expert_model_parallel_size={s.ep}", f"{P}data_parallel_size=auto",
                f"{P}micro_batch_size={s.micro_batch}", f"{P}sequence_parallel={_yaml(s.tp > 1)}",
                f"{P}distributed_optimizer={_yaml(self.zero == 1)}",
                f"{P}zero_stage={_yaml(self.zero if self.zero != 1 else None)}",
                f"{P}reshard_after_forward={_yaml(reshard_after_forward(self.zero, s.pp))}",
                f"{P}recompute_granularity={self.recompute}", f"{P}pipeline_schedule={_yaml(schedule)}",
                f"{P}decoder_first_pipeline_num_layers={_yaml(s.first)}",
                f"{P}decoder_last_pipeline_num_layers={_yaml(s.last)}",
                f"{P}pipeline_model_parallel_layout=null",
                *(f"{P}{k}={_yaml(v)}" for k, v in recompute_resets(self.recompute).items()))

    def parallelism(self) -> dict:
        """The same choices as parallelism-section fields (for building configs in memory)."""
        return {k.split(".", 1)[1].split("=")[0]: _value(k.split("=", 1)[1]) for k in self.overrides()}

    def describe(self) -> str:
        s = self.structure
        parts = [f"TP{s.tp}", f"PP{s.pp}"]
        if s.first is not None:
            parts[-1] += f"({s.first}/{s.last})"
        parts += [f"VPP{s.vpp}"] * (s.vpp > 1) + [f"CP{s.cp}"] * (s.cp > 1) + [f"EP{s.ep}"] * (s.ep > 1)
        parts += [f"DP{s.dp}", f"mb{s.micro_batch}", f"ZeRO-{self.zero}"]
        if self.recompute != "none":
            parts.append(f"recompute={self.recompute}")
        return " ".join(parts)


def _yaml(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value(text: str) -> object:
    return {"null": None, "true": True, "false": False}.get(text, int(text) if text.isdigit() else text)


def stage_splits(num_layers: int, pp: int) -> list[tuple[int | None, int | None, tuple[int, ...]]]:
    """(first, last, layers per stage) for PP stages: the even split when PP divides the layers, else
    Megatron's uneven split (decoder_first/last_pipeline_num_layers): the inner stages hold
    ceil(layers / PP) each and the first and last stages share the remainder, the last (which also
    holds the output layer and any MTP modules) no heavier than the first. With PP | layers + 2 this
    is Llama 3's split (both ends one layer lighter); PP2 splits 61 as 31 / 30, PP16 as 3 / 4 x 14 / 2.
    No split when the ends would get no layer (``split_refusal`` says why)."""
    if num_layers % pp == 0:
        return [(None, None, (num_layers // pp,) * pp)]
    if pp == 1 or split_refusal(num_layers, pp):
        return []
    mid = -(-num_layers // pp)
    edge = num_layers - mid * (pp - 2)
    first, last = -(-edge // 2), edge // 2
    return [(first, last, (first,) + (mid,) * (pp - 2) + (last,))]


def split_refusal(num_layers: int, pp: int) -> str | None:
    """Why PP stages cannot hold ``num_layers`` layers (None when some split exists)."""
    if pp > num_layers:
        return f"PP{pp} exceeds num_layers={num_layers} (each stage needs a layer)"
    if num_layers % pp == 0 or pp == 2:
        return None
    mid = -(-num_layers // pp)
    if num_layers - mid * (pp - 2) < 2:
        rest = num_layers - mid * (pp - 2)
        return (f"PP{pp} does not divide num_layers={num_layers}, and {pp - 2} inner stages of {mid} layers "
                + (f"leave {rest} for the first and last stages (they need one each)" if rest >= 0
                   else f"already take {mid * (pp - 2)}, more than the model has"))
    return None


def _tp_values(a: Arch, n: int) -> list[int]:
    return [t for t in divisors(n) if a.heads % t == 0 and a.query_groups % t == 0 and a.ffn % t == 0
            and (not a.is_moe or a.moe_ffn % t == 0)]


def _vpp_values(stages: tuple[int, ...], uneven: bool, pp: int, m: int) -> list[int]:
    """Virtual stages per rank: divisors of the layers per stage. Llama 3's split (both ends one layer
    lighter) is Megatron's account_for_embedding/loss_in_pipeline_split, which needs PP x VPP to
    divide layers + 2: VPP divides the inner stages' count. Other uneven splits
    (num_layers_in_first/last_pipeline_stage) split every stage's layers into VPP equal chunks."""
    if pp == 1 or m % pp:
        return [1]
    if uneven:
        mid = stages[1] if pp > 2 else max(stages)
        slots = mid if (pp > 2 and stages[0] == stages[-1] == mid - 1) else math.gcd(*stages)
        return [1] + [v for v in divisors(slots) if v > 1]
    return [1] + [v for v in divisors(stages[0]) if v > 1]


def structures(a: Arch, global_batch: int, num_gpus: int, space: Space = Space()) -> list[Structure]:
    """Every layout shape that divides: TP | heads, groups, FFN; PP splits the layers; 2·CP | seq;
    EP | experts and DP·CP; TP·PP·CP | N; micro batch · DP | global batch; VPP splits each stage."""
    out = []
    for tp in (t for t in _tp_values(a, num_gpus) if space.allows("tp", t)):
        for pp in (p for p in divisors(num_gpus // tp) if space.allows("pp", p)):
            for first, last, stages in stage_splits(a.num_layers, pp):
                for cp in divisors(num_gpus // (tp * pp)):
                    if (cp > 1 and a.seq % (2 * cp)) or not space.allows("cp", cp):
                        continue
                    dp = num_gpus // (tp * pp * cp)
                    if global_batch % dp:
                        continue
                    for ep in _ep_values(a, dp * cp):
                        if not space.allows("ep", ep):
                            continue
                        for mb in divisors(global_batch // dp):
                            if not space.allows("micro_batch", mb):
                                continue
                            m = global_batch // (mb * dp)
                            for v in _vpp_values(stages, first is not None, pp, m):
                                if space.allows("vpp", v):
                                    out.append(Structure(tp, pp, first, last, cp, ep, dp, mb, v))
    return out


def _ep_values(a: Arch, dp_cp: int) -> list[int]:
    if not a.is_moe:
        return [1]
    return [e for e in divisors(a.num_experts) if dp_cp % e == 0]


def zero_stages(st: Structure, space: Space) -> list[int]:
    """Every ZeRO stage combines with every shape: with pipelining ZeRO-2/3 reduce-scatter each
    microbatch's gradients, and ZeRO-3 keeps the stage's parameters gathered for the step
    (reshard_after_forward off, as torchtitan does under pipelining)."""
    return list(space.zero)


def reshard_after_forward(zero: int, pp: int) -> bool:
    """FSDP's default (reshard) except ZeRO-3 with pipelining, where gathering once per step is the
    framework choice (torchtitan; Llama 3 section 3.3.2)."""
    return not (zero >= 3 and pp > 1)


def layouts(structs: Sequence[Structure], space: Space = Space()) -> list[Layout]:
    """Every Layout of the given shapes (ZeRO stage x recomputation), in a fixed order."""
    return [Layout(st, z, r, space.schedule) for st in structs for z in zero_stages(st, space)
            for r in space.recompute]
