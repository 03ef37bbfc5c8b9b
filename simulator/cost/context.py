"""Context-parallel attention: exposed communication per layer and microbatch, by Megatron's
``cp_comm_type``.

Megatron-Core / Transformer Engine split each sequence into 2 x CP chunks and give rank r chunks r
and 2CP-1-r, so every rank holds the same share of the causal work (load balancing); the attention
FLOPs (model/ops.py) are already that balanced share.

- ``p2p`` (ring attention, TE's AttnFuncWithCPAndKVP2P, the default): CP steps; at each step a rank
  computes its queries against the KV block it holds while sending that block on to the next rank and
  receiving the next one. A transfer can only hide behind one step's attention (1/CP of the layer's
  attention), so each of the CP-1 transfers shows by what it exceeds that step. The backward sends
  the KV block and its gradient (twice the bytes) against one step of the backward's attention.
- ``all_gather`` (AttnFuncWithCPAndKVAllGather): the whole sequence's K and V are all-gathered before
  the attention and their gradients reduce-scattered after it; costed without overlap.
- ``a2a`` (Ulysses, DeepSpeed-style): all-to-all Q, K, V from sequence- to head-sharded before the
  attention and the output back after it; the backward moves the gradients the same way; no
  overlap (the attention needs its inputs). Needs the local heads divisible by CP.
"""
from __future__ import annotations

from simulator.cost import comm


def ring_exposed(steps: int, transfer: float, attention: float) -> float:
    """Exposed time of a ring of ``steps`` ranks: steps-1 transfers of ``transfer`` seconds, each
    overlapped with one step's share of ``attention`` seconds."""
    if steps <= 1:
        return 0.0
    return (steps - 1) * max(0.0, transfer - attention / steps)


def cp_exposed(kind: str, lay, tiers: comm.Tiers, tokens: float, kv_width: float, q_width: float,
               attn_width: float, act_bytes: float, attn_f: float, attn_b: float) -> tuple[float, float]:
    """(forward, backward) exposed context-parallel communication of one layer on one GPU.

    ``tokens``: the rank's tokens of the microbatch (seq x mbs / CP); widths are the whole model's
    (divided by TP here); ``attn_f`` / ``attn_b``: the layer's attention-core seconds."""
    cp, tp = lay.cp, lay.tp
    if cp <= 1:
        return 0.0, 0.0
    kv = tokens * kv_width / tp * act_bytes                 # the K and V of this rank's chunks
    if kind == "p2p":
        one = comm.send_recv(tp, kv, tiers, peers=cp)
        two = comm.send_recv(tp, 2 * kv, tiers, peers=cp)   # backward: KV and its gradient
        return ring_exposed(cp, one, attn_f), ring_exposed(cp, two, attn_b)
    group = comm.Group.of("cp", lay)
    if kind == "all_gather":
        gather = comm.all_gather(group, kv * cp, tiers)     # output: every rank's K and V
        return gather, gather + comm.reduce_scatter(group, kv * cp, tiers)
    if kind == "a2a":
        qkv = tokens * (q_width + kv_width) / tp * act_bytes
        out = tokens * attn_width / tp * act_bytes
        one = comm.all_to_all(group, qkv, tiers) + comm.all_to_all(group, out, tiers)
        return one, one
    raise ValueError(f"unknown cp_comm_type {kind!r}")
