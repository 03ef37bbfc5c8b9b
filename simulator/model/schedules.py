"""Pipeline schedules as pure op lists: for each stage, the order of its compute tasks.

A task is (kind, microbatch, chunk): kind "F" (forward), "B" (backward; with the weight gradient
unless the schedule splits it off) or "W" (weight gradient alone, zero-bubble schedules). ``chunk``
is the model chunk on that stage (virtual stage = chunk * p + stage); 0 unless interleaved.
No simpy here: the iteration engine executes these lists and the memory model replays them.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np


class Task(NamedTuple):
    kind: str
    microbatch: int
    chunk: int


def gpipe(p: int, m: int, stage: int) -> list[Task]:
    """All forwards, then all backwards (Huang et al. 2019)."""
    return [Task("F", j, 0) for j in range(m)] + [Task("B", j, 0) for j in range(m)]


def one_f_one_b(p: int, m: int, stage: int) -> list[Task]:
    """PipeDream-Flush / Megatron 1F1B: p-stage-1 warm-up forwards, then alternate, then drain."""
    warm = min(p - stage - 1, m)
    tasks = [Task("F", j, 0) for j in range(warm)]
    f, b = warm, 0
    while f < m:
        tasks.append(Task("F", f, 0))
        f += 1
        tasks.append(Task("B", b, 0))
        b += 1
    tasks += [Task("B", j, 0) for j in range(b, m)]
    return tasks


def _interleaved_ids(p: int, m: int, v: int, k: int, forward: bool) -> tuple[int, int]:
    """Microbatch and chunk of the k-th forward (or backward) of a stage under interleaving."""
    group = k // (p * v)
    within = k % (p * v)
    chunk = within // p
    if not forward:
        chunk = v - 1 - chunk
    return group * p + within % p, chunk


def interleaved(p: int, m: int, stage: int, v: int) -> list[Task]:
    """Megatron-LM interleaved 1F1B with v model chunks per stage (Narayanan et al. 2021).

    Needs m to be a multiple of p. Warm-up: (p - stage - 1) * 2 + (v - 1) * p forwards.
    """
    total = m * v
    warm = min((p - stage - 1) * 2 + (v - 1) * p, total)
    tasks = [Task("F", *_interleaved_ids(p, m, v, k, True)) for k in range(warm)]
    f, b = warm, 0
    while f < total:
        tasks.append(Task("F", *_interleaved_ids(p, m, v, f, True)))
        f += 1
        tasks.append(Task("B", *_interleaved_ids(p, m, v, b, False)))
        b += 1
    tasks += [Task("B", *_interleaved_ids(p, m, v, k, False)) for k in range(b, total)]
    return tasks


def zero_bubble_h1(p: int, m: int, stage: int) -> list[Task]:
    """ZB-H1 (Qi et al. 2024): 1F1B with the backward split into B (input gradient) and W (weight
    gradient). Stage i holds back i weight-gradient tasks through the steady state and spends them in
    its drain, one after each B, where 1F1B would wait for the next stage's gradient; with equal F,
    B and W times the bubble shrinks from (p-1)(F+B+W) to (p-1)(F+B-W), as the paper reports."""
    defer = stage
    out: list[Task] = []
    pending: list[Task] = []
    forwards_left = m
    for t in one_f_one_b(p, m, stage):
        out.append(t)
        if t.kind == "F":
            forwards_left -= 1
            continue
        pending.append(Task("W", t.microbatch, 0))
        if forwards_left > 0:
            if len(pending) > defer:          # steady state: keep `defer` weight gradients in hand
                out.append(pending.pop(0))
        else:                                 # drain: fill the wait for the next B with a W
            out.append(pending.pop(0))
    return out + pending


def schedule(name: str, p: int, m: int, stage: int, v: int = 1) -> list[Task]:
    if name == "gpipe":
        return gpipe(p, m, stage)
    if name == "1f1b":
        return one_f_one_b(p, m, stage)
    if name == "interleaved_1f1b":
        return interleaved(p, m, stage, v)
    if name == "zb_h1":
        return zero_bubble_h1(p, m, stage)
    raise ValueError(f"unknown pipeline schedule {name!r}")


@lru_cache(maxsize=4096)
def peak_live_layers(name: str, p: int, m: int, stage: int, v: int, chunk_layers: tuple[int, ...]) -> float:
    """Most layers' worth of saved activations a stage holds at once under a schedule: every forward
    of model chunk c keeps ``chunk_layers[c]`` layers' activations until its backward (B) runs.

    This is the one source of truth for in-flight activations (model/memory.py and the step DES both
    run these task lists). Closed forms where the schedule has one, replay otherwise: GPipe holds all
    m microbatches, 1F1B and ZB-H1 (W tasks free nothing new) min(m, p - stage), interleaved with equal
    chunks min(warm-up + 1, m*v) chunk-microbatches; interleaved with unequal chunks is replayed.
    """
    if name == "gpipe":
        return float(m * sum(chunk_layers))
    if name in ("1f1b", "zb_h1"):
        return float(min(m, p - stage) * sum(chunk_layers))
    if len(set(chunk_layers)) == 1:
        warm = min((p - stage - 1) * 2 + (v - 1) * p, m * v)
        return float(min(warm + 1, m * v) * chunk_layers[0])
    chunks, forward = _replay_plan(name, p, m, stage, v)
    w = np.asarray(chunk_layers)
    if not len(chunks):
        return 0.0
    # the running total after each task, added in task order exactly as a loop over the tasks would
    # (numpy's cumulative sum is sequential), at the forwards
    live = np.cumsum(np.where(forward, w[chunks], -w[chunks]))
    return float(max(0, live[forward].max(initial=0)))


@lru_cache(maxsize=1024)
def _replay_plan(name: str, p: int, m: int, stage: int, v: int) -> tuple[np.ndarray, np.ndarray]:
    """(model chunk of each F and B task in the stage's order, which of them are forwards): the task
    list of ``schedule`` as arrays, built without it for the interleaved schedule."""
    if name != "interleaved_1f1b":
        tasks = [t for t in schedule(name, p, m, stage, v) if t.kind in "FB"]
        return (np.array([t.chunk for t in tasks], dtype=np.int64),
                np.array([t.kind == "F" for t in tasks], dtype=bool))
    total = m * v
    warm = min((p - stage - 1) * 2 + (v - 1) * p, total)
    f_chunk = np.arange(total) % (p * v) // p          # _interleaved_ids, forward
    b_chunk = v - 1 - f_chunk                            # backward
    steady = total - warm                                # (F, B) pairs after the warm-up
    chunks = np.empty(2 * total, dtype=np.int64)
    forward = np.zeros(2 * total, dtype=bool)
    chunks[:warm], forward[:warm] = f_chunk[:warm], True
    chunks[warm:warm + 2 * steady:2], forward[warm:warm + 2 * steady:2] = f_chunk[warm:], True
    chunks[warm + 1:warm + 2 * steady:2] = b_chunk[:steady]
    chunks[warm + 2 * steady:] = b_chunk[steady:]
    return chunks, forward


def peak_in_flight(tasks: list[Task]) -> int:
    """Most forwards whose backward has not run yet: the activations a stage holds at its peak."""
    live = peak = 0
    for t in tasks:
        if t.kind == "F":
            live += 1
            peak = max(peak, live)
        elif t.kind == "B":
            live -= 1
    return peak
