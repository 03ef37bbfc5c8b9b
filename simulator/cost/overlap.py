"""Communication hidden behind compute, and what hiding it costs: the SMs an overlapped collective
occupies, Transformer Engine / PyTorch async-TP overlap of the TP collectives, and Megatron-Core's
expert-parallel all-to-all overlap. Pure functions of seconds already costed (cost/stage.py and
cost/step.py call them)."""
from __future__ import annotations

from simulator.model.ops import Op


def sm_stolen(hidden_s: float, compute_s: float, share: float) -> float:
    """Extra compute seconds when ``hidden_s`` of collectives run behind ``compute_s`` of compute
    and take ``share`` of the SMs while they run: the overlapped compute, min(hidden, compute),
    runs at 1 - share of its speed, so it takes share / (1 - share) of itself longer."""
    if share <= 0.0:
        return 0.0
    return min(max(hidden_s, 0.0), compute_s) * share / (1.0 - share)


# Transformer Engine's userbuffer TP overlap as NeMo / Megatron-Bridge configure it
# (TransformerLayerTPOverlapCfg presets): the reduce-scatter side (attention projection and fc2
# forward, qkv and fc1 data-gradients backward) runs as a pipelined overlap on 16-32 SMs with an SM
# margin taken from the GEMM (num_sm 24 / 16 for proj / fc2 forward); the all-gather side is a ring
# exchange on copy engines (num_sm 1). 20 SMs is the representative figure.
TP_OVERLAP_SMS = 20
RS_OVERLAPPED_FWD = 0.5    # share of the forward linear-GEMM time overlapped with a reduce-scatter
RS_OVERLAPPED_BWD = 0.25   # backward: the data-gradient half of qkv and fc1 (half of dgrad)


def pipelined_tp_exposed(ops: list[Op], times: list[float], gather: float, scatter: float, tp: int) -> float:
    """Seconds of a layer's TP collectives (one direction) left exposed by a pipelined overlap.

    Transformer Engine's userbuffers and PyTorch's async TP (micro-pipelining) fuse each collective
    with the one GEMM next to it, never with the rest of the layer: a block's (attention's, then the
    MLP's) all-gather with its first linear GEMM (qkv, fc1: the column-parallel side), its
    reduce-scatter (or all-reduce) with its last (the projection, fc2: the row-parallel side). The
    GEMM runs in ``tp`` chunks as the chunks arrive (ring exchange) or leave, so one chunk's compute
    cannot overlap: a collective of c seconds beside a GEMM of g leaves max(0, c + g/tp - g)
    exposed. A block whose side is a grouped expert GEMM (the MoE dispatcher's gather and scatter)
    hides nothing."""
    exposed = 0.0
    for attention in (True, False):
        lin = [i for i, o in enumerate(ops) if o.kind == "gemm" and o.linear and (o.scope == "attn") == attention]
        for c, side in ((gather, 0), (scatter, -1)):
            if not lin or ops[lin[side]].group > 1:
                exposed += c
            else:
                g = times[lin[side]]
                exposed += max(0.0, c + g / tp - g)
    return exposed


def tp_overlap_steal(gpu) -> float:
    """Fraction of the SMs an overlapped TP reduce-scatter takes from the GEMM it hides behind."""
    return min(0.5, TP_OVERLAP_SMS / (gpu.sm_count or 132))


def tp_overlap_exposed(ops: list[Op], fw: list[float], bw: list[float], gather: float, scatter: float,
                       tp: int, gpu) -> tuple[float, float]:
    """(forward, backward) seconds of a layer's overlapped TP collectives: what the pipelined overlap
    leaves exposed (the backward's collectives beside the same GEMMs' data- and weight-gradient
    halves), plus what the hidden part costs: a reduce-scatter overlapped with its GEMM runs on
    TP_OVERLAP_SMS of the GPU's SMs, which the GEMM loses while both run."""
    lin_f = sum(t for o, t in zip(ops, fw) if o.kind == "gemm" and o.linear)
    lin_b = sum(t for o, t in zip(ops, bw) if o.kind == "gemm" and o.linear)
    steal = tp_overlap_steal(gpu)
    hidden_f, hidden_b = RS_OVERLAPPED_FWD * lin_f, RS_OVERLAPPED_BWD * lin_b
    return (pipelined_tp_exposed(ops, fw, gather, scatter, tp) + sm_stolen(hidden_f, hidden_f, steal),
            pipelined_tp_exposed(ops, bw, gather, scatter, tp) + sm_stolen(hidden_b, hidden_b, steal))


# SMs an overlapped expert-parallel all-to-all occupies while it runs: Megatron-Core's DeepEP
# buffer takes moe_deepep_num_sms = 20 (HybridEP's moe_hybridep_num_sms: 16; NVIDIA/Megatron-LM
# megatron/core/transformer/transformer_config.py), and
# DeepSeek-V3's DualPipe overlap dedicates 20 of the H800's 132 SMs to dispatch and combine
# (DeepSeek-V3 technical report, Sec. 3.2.2); NCCL's all-to-all runs one CTA per channel on the SMs
# as well. The same 20 as TP_OVERLAP_SMS.
EP_OVERLAP_SMS = 20


def overlapped_ep(ep_f: float, ep_b: float, compute: float, sms: int | None = None) -> tuple[float, float]:
    """Exposed dispatch/combine under Megatron-Core's EP communication overlap
    (overlap_moe_expert_parallel_comm; Megatron-Bridge moe_a2a_overlap): in the 1F1B steady state
    one microbatch's forward and another's backward run interleaved layer by layer on two streams,
    so each one's all-to-alls hide behind the other's compute; only what exceeds the layer's
    forward + backward compute shows. The hidden part is not free: while it runs the all-to-all
    holds EP_OVERLAP_SMS of the GPU's SMs, so the compute it hides behind runs that much slower
    (share / (1 - share) of the overlapped time, added here, split like the all-to-alls)."""
    total = ep_f + ep_b
    if total <= 0.0:
        return ep_f, ep_b
    keep = max(0.0, total - compute) / total
    share = min(0.5, EP_OVERLAP_SMS / (sms or 132))
    steal = sm_stolen(total, compute, share)
    return (ep_f * keep + steal * ep_f / total, ep_b * keep + steal * ep_b / total)
