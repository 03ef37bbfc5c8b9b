"""The human-readable summary `trainsim run` prints (plain text; no plotting here)."""
from __future__ import annotations

from simulator.metrics.result import Result
from simulator.units import fmt_duration, fmt_si

_LABELS = {
    "compute": "compute", "recompute": "recompute", "tp_comm": "exposed TP comm",
    "cp_comm": "exposed CP comm", "ep_comm": "EP all-to-all", "pp_comm": "PP send/recv",
    "bubble": "bubble", "dp_comm": "exposed DP comm", "optimizer": "optimizer",
    "host_bound": "waiting for host launches", "grad_accum": "gradient accumulation",
}


def fmt_days(days: float) -> str:
    """Days with one decimal, years beyond a few thousand days, hours or minutes below a twentieth
    of a day (a short phase or test run read "0.0 d"); never nan."""
    if days is None or days != days:
        return "—"
    if days >= 3650:
        return f"{days / 365.25:,.3g} y"
    if days < 0.05:
        return fmt_duration(days * 86400.0)
    return f"{days:,.1f} d"


def breakdown_line(breakdown: dict, total: float) -> str:
    parts = [(k, v) for k, v in breakdown.items() if v > 0.0005 * total]
    parts.sort(key=lambda kv: -kv[1])
    return " · ".join(f"{_LABELS.get(k, k)} {100 * v / total:.1f} %" for k, v in parts)


_ALWAYS = ("weights", "gradients", "optimizer", "activations")


def _memory_parts(mem: dict) -> str:
    """The breakdown's terms: the four main ones always, the others (FP8 copies, gather buffers,
    fragmentation, runtime, host-offloaded activations) where they are not zero."""
    parts = [f"{k.replace('_', ' ')} {v:.1f}" for k, v in mem.items()
             if k not in ("total", "offloaded") and (k in _ALWAYS or v > 0)]
    if mem.get("offloaded"):
        parts.append(f"+ {mem['offloaded']:.1f} offloaded to host")
    return ", ".join(parts)


def _pool(c) -> str:
    """The spare pool in words: the dedicated spares, and the idle cluster nodes that also serve."""
    idle = getattr(c, "idle_spare_nodes", 0)
    dedicated = c.spare_nodes - idle
    text = f"{dedicated:,} spare node{'s' if dedicated != 1 else ''}"
    return text + (f" + {idle:,} idle cluster nodes as spares" if idle else "")


def fmt_span(days: float) -> str:
    """A time to train: days from one day on, else a duration ('37 s', '14.2 min', '5.3 h')."""
    if days is None or days != days or days >= 1:
        return fmt_days(days)
    return fmt_duration(days * 86400.0)


def phase_lines(phases: list) -> list[str]:
    """One line per training phase: its layout, length, step and its share of the campaign. The
    time and ETTR are the phase's own; the switch into it is printed apart (its restart would
    swamp a phase of a few steps), and the GPU-hours include it."""
    out = []
    for i, p in enumerate(phases):
        days = p.get("time_to_train_days_mean")
        days = p.get("time_to_train_days_p50") if days is None else days
        gh = p.get("gpu_hours")
        sw = p.get("switch_in_s") or 0.0
        switch = f" after a {fmt_duration(sw)} phase switch" if sw > 0 else ""
        out.append(
            f"{'phases' if i == 0 else '':<17}{i + 1}. {p['name']}: {p['num_gpus']:,} GPUs {p['layout']}, "
            f"{p['global_batch_size']:,} × {p['seq_length']:,}, {fmt_si(p['train_tokens'], billion='B')} "
            f"tokens in {p['train_steps']:,} steps of {fmt_duration(p['step_time_s'])} (MFU "
            f"{100 * p['mfu']:.1f} %): {fmt_span(p['ideal_time_to_train_days'])} ideal, "
            + (f"{fmt_span(days)} mean (ETTR {p['ettr']:.2f}){switch}, {fmt_si(gh)} GPU-h"
               + (" with the switch" if sw > 0 else "") if days is not None
               else (p.get("time_to_train_reason") or "campaign not simulated") + switch))
    return out


def _checkpoint_load(c, r: Result) -> str:
    """" (5.68 TB each: 66.4 GB/s to storage)": what the checkpoint interval asks of the storage (an
    interval of seconds is Daly's optimum for a cheap async snapshot, but every checkpoint is written)."""
    size, every = getattr(c, "checkpoint_size_bytes", None), c.checkpoint_interval_s
    if not size or not every or r.train_steps is None or every >= r.ideal_time_to_train_days * 86400.0:
        return ""
    return f" ({fmt_si(size, 'B')} each: {fmt_si(size / every, 'B/s')} to storage)"


def summary(r: Result) -> str:
    mem = r.memory_breakdown_gib
    lines = [
        f"{r.name} on {r.num_gpus:,} × {r.gpu} ({r.cluster})   {r.layout}, micro batch "
        f"{r.micro_batch_size} × {r.num_microbatches} microbatches, global batch "
        f"{r.global_batch_size} × {r.seq_length}",
        f"parameters       {fmt_si(r.num_parameters, billion='B')}"
        + (f" ({fmt_si(r.num_active_parameters, billion='B')} active per token)"
           if r.num_active_parameters != r.num_parameters else ""),
        f"step time        {fmt_duration(r.step_time_s)}    tokens/s {fmt_si(r.tokens_per_s)}    "
        f"MFU {100 * r.mfu:.1f} % of BF16 peak (HFU {100 * r.hfu:.1f} %)    {r.tflops_per_gpu:.0f} model TFLOP/s per GPU",
        f"memory/GPU       {r.memory_per_gpu_gib:.1f} of {r.memory_capacity_gib:.1f} GiB  ({_memory_parts(mem)})",
    ]
    c = r.campaign
    if r.train_steps is not None and c is not None:
        lost = c.time_lost_s
        top = sorted(((v, k) for k, v in lost.items() if v > 0), reverse=True)[:3]
        head = (f"time to train    {fmt_si(r.train_tokens, billion='B')} tokens in {r.train_steps:,} "
                f"steps: {fmt_days(r.ideal_time_to_train_days)} ideal · ")
        if c.finishes:
            p90 = fmt_days(c.time_to_train_days_p90) if c.time_to_train_days_p90 is not None else "—"
            # P50 / P90 of the failure simulation alone; the model's own error is the prediction band's
            n = round(c.failures["total"])
            lines.append(head + f"{fmt_days(c.time_to_train_days_p50)} P50 · {p90} P90 of failures "
                         f"(ETTR {c.ettr:.2f}, {n:,} failure{'' if n == 1 else 's'})")
        else:
            lines.append(head + f"{c.time_to_train_reason} (ETTR {c.ettr:.2f})")
        lines.append(
            f"campaign         checkpoint every {fmt_duration(c.checkpoint_interval_s)}{_checkpoint_load(c, r)}, restart "
            f"{fmt_duration(c.restart_s)}, job MTBF "
            f"{fmt_duration(c.mtbf_s) if c.mtbf_s != float('inf') else 'none (no failure rates)'}; time lost: "
            + (", ".join(f"{k.replace('_', ' ')} {v / 86400:.1f} d" for v, k in top) or "none")
            + (f" ({c.replicas} replicas, {_pool(c)})" if c.simulated
               else " (not simulated: decided from arithmetic)"))
        lines.extend(f"warning          {w}" for w in c.warnings)
        lines.extend(phase_lines(r.phases))
        top = (r.layout, r.seq_length, r.global_batch_size, r.num_gpus)
        if r.phases and not any((p["layout"], p["seq_length"], p["global_batch_size"], p["num_gpus"]) == top
                                for p in r.phases):
            lines.append("note             no training phase runs the top level as written: the step, MFU and "
                         "band above are its, for reference; the phases' own lines are what runs")
    elif r.train_steps is not None:
        lines.append(
            f"time to train    {fmt_si(r.train_tokens, billion='B')} tokens in {r.train_steps:,} steps: "
            f"{r.ideal_time_to_train_days:.1f} d ideal (campaign not simulated)")
    else:
        lines.append("time to train    not computed: set training.train_tokens or training.train_iters")
    e = r.energy
    if e is not None:
        waste = sum(v for k, v in e.cost_by_use_usd.items() if k not in ("productive", "spares", "energy"))
        spares = e.cost_by_use_usd.get("spares", 0.0)
        swing = (f" (a step swings {e.step_power_w['min'] / 1e6:.2f}–{e.step_power_w['max'] / 1e6:.2f} MW)"
                 if r.step_power is not None else " (in-step power needs the step DES)")
        lines.append(
            f"energy           {e.energy_j / 3.6e9:,.0f} MWh · avg {e.avg_power_w / 1e6:.2f} MW · peak "
            f"{e.peak_power_w / 1e6:.2f} MW{swing} · {e.co2_kg / 1000:,.0f} tCO2e · "
            f"$ {fmt_si(e.cost_usd)} (of which failures and checkpoints {100 * waste / e.cost_usd if e.cost_usd else 0.0:.1f} %"
            + (f", spare nodes $ {fmt_si(spares)}" if spares > 0 else "") + ")")
    lines.append(f"where the step goes: {breakdown_line(r.breakdown, r.step_time_s)}")
    lines.append(f"assumptions: {len(r.assumptions)} defaults filled in (see --json \"assumptions\")"
                 f" · engine: {r.engine}")
    return "\n".join(lines)
