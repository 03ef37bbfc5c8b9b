"""Plain-text rendering of `trainsim topology`'s report."""
from __future__ import annotations

from simulator.units import fmt_si


def _bw(bytes_per_s: float | None) -> str:
    """A bandwidth, or "n/a" where none is defined (a bisection that would split a scale-up domain)."""
    return "n/a" if bytes_per_s is None else fmt_si(bytes_per_s, "B/s")


def topology_text(r: dict) -> str:
    lines = [
        f"{r['cluster']} ({r['source']}): {r['gpus']:,} × {r['gpu']} in {r['nodes']:,} nodes, "
        f"{r['fabric']} with {r['scale_up']} domains",
        f"switches {r['switches']:,} · links {r['links']:,} · bisection {_bw(r['bisection_bandwidth'])} "
        + (f"({_bw(r['bisection_per_gpu'])} per GPU; {r['bisection_method']})" if r['bisection_bandwidth'] is not None
           else "(no even cut: halving the GPUs would split a scale-up domain, or no rule applies)"),
        "",
        f"{'tier':>4}  {'name':<10} {'links':>9} {'per link':>11} {'total':>11} {'span (GPUs)':>12} {'oversub':>8}",
    ]
    for t in r["tiers"]:
        over = "" if t["oversubscription"] is None else f"{t['oversubscription']:.2f}:1"
        span = "" if t["span"] is None else f"{t['span']:,}"
        lines.append(f"{t['tier']:>4}  {t['name']:<10} {t['links']:>9,} {_bw(t['link_capacity']):>11} "
                     f"{_bw(t['total_capacity']):>11} {span:>12} {over:>8}")
    return "\n".join(lines)
