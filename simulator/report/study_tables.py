"""Text tables of the study commands (compare, sweep, search, size, sensitivity).

Rows are the flat dicts of simulator.explore.cases; values read back from a CSV are text, so every
number goes through ``num`` first. A missing value prints as "–", never as a made-up number.
"""
from __future__ import annotations

from typing import Sequence

from simulator.errors import clip
from simulator.units import fmt_si

DASH = "–"
_WHY = (("compute", "compute"), ("recompute", "recomp"), ("tp_comm", "TP"), ("cp_comm", "CP"),
        ("ep_comm", "EP"), ("pp_comm", "PP"), ("bubble", "bubble"), ("dp_comm", "DP"),
        ("optimizer", "optim"))
_LOST = (("lost_work", "lost work"), ("restart", "restart"), ("detection", "detect"),
         ("checkpoint", "ckpt"), ("waiting_for_spares", "spares"))


def num(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if x != x else x     # NaN: not a number to show


def fmt(v, spec: str = "{:.3g}") -> str:
    x = num(v)
    return DASH if x is None else spec.format(x)


def money(v) -> str:
    x = num(v)
    return DASH if x is None else "$" + fmt_si(x)


def big(v) -> str:
    x = num(v)
    return DASH if x is None else ("{:,.0f}".format(x) if abs(x) >= 100 else "{:.3g}".format(x))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Aligned columns: the first ``left`` columns left-aligned, the rest right-aligned."""
    cells = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(headers))]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(str(x).ljust(widths[i]) if i < left else str(x).rjust(widths[i])
                               for i, x in enumerate(c)).rstrip())
        if k == 0:
            lines.append("-" * max(len(lines[0]), 1))
    return "\n".join(lines)


def span(row: dict, lo: str, hi: str, show=fmt, spec: str | None = None) -> str:
    """The P10-P90 prediction band of a row as "lo–hi" (a dash when the row has none)."""
    a, b = num(row.get(lo)), num(row.get(hi))
    if a is None or b is None:
        return DASH
    return f"{show(a, spec)}–{show(b, spec)}" if spec else f"{show(a)}–{show(b)}"


def step_band(row: dict) -> str:
    return span(row, "step_time_s_p10", "step_time_s_p90", fmt, "{:.3g}")


def days_band(row: dict) -> str:
    return span(row, "time_to_train_days_band_p10", "time_to_train_days_band_p90", fmt, "{:.1f}")


def money_band(row: dict) -> str:
    a, b = num(row.get("cost_usd_p10")), num(row.get("cost_usd_p90"))
    return DASH if a is None or b is None else f"${fmt_si(a)}–{fmt_si(b)}"


BAND_NOTE = ("P10–P90 columns: prediction band, the model's out-of-sample error (leave-one-source-out "
             "validation or your calibration) with the campaign's spread (docs/calibration.md); "
             "rankings use the central values")


def result_cells(row: dict, confidence: str = "p50") -> list[str]:
    if row.get("status") not in (None, "ok"):
        return [row.get("status", "")] + [""] * (len(RESULT_HEADERS) - 1)
    return [str(row.get("layout") or DASH), fmt(row.get("num_gpus"), "{:.0f}"),
            fmt(row.get("step_time_s"), "{:.3g} s"), step_band(row), fmt(row.get("mfu"), "{:.1%}"),
            fmt(row.get("time_to_train_days_p50"), "{:.1f}"), fmt(row.get("time_to_train_days_p90"), "{:.1f}"),
            days_band(row), fmt(row.get("ettr"), "{:.3f}"),
            DASH if num(row.get("gpu_hours")) is None else fmt_si(num(row["gpu_hours"])),
            big(row.get("energy_mwh")), big(row.get("co2_tonnes")), money(row.get("cost_usd")), money_band(row)]


RESULT_HEADERS = ("layout", "GPUs", "step", "step P10–P90 s", "MFU", "P50 d", "P90 d", "d P10–P90", "ETTR",
                  "GPU-h", "MWh", "tCO2e", "$", "$ P10–P90")


def results_table(rows: Sequence[dict]) -> str:
    """The side-by-side table: one row per case."""
    return table(("case",) + RESULT_HEADERS, [[str(r.get("case"))] + result_cells(r) for r in rows], left=2)


def why_table(rows: Sequence[dict]) -> str:
    """Where each case's step goes (% of the step) and the days each cause of loss costs."""
    heads = ("case",) + tuple(h for _, h in _WHY) + tuple(f"{h} d" for _, h in _LOST)
    body = []
    for r in rows:
        step = num(r.get("step_time_s"))
        if r.get("status") not in (None, "ok") or not step:
            continue
        cells = [fmt((num(r.get(f"breakdown_{k}_s")) or 0) / step, "{:.1%}") if num(r.get(f"breakdown_{k}_s"))
                 is not None else DASH for k, _ in _WHY]
        cells += [fmt(r.get(f"lost_{k}_days"), "{:.2f}") for k, _ in _LOST]
        body.append([str(r.get("case"))] + cells)
    return table(heads, body)


def errors(rows: Sequence[dict]) -> list[str]:
    return [f"  {r.get('case')}: {r.get('status')}: {r.get('error')}" for r in rows
            if r.get("status") not in (None, "ok")]


def unfinished(rows: Sequence[dict]) -> list[str]:
    """Why a simulated case shows no days: its campaign's reason (it does not finish, a horizon)."""
    return [f"  {r.get('case')}: {clip(str(r['time_to_train_reason']), 400)}" for r in rows
            if r.get("status") in (None, "ok") and r.get("time_to_train_reason")]


def compare_text(rows: Sequence[dict]) -> str:
    parts = [results_table(rows), "", "where the step goes (% of step time) and time lost (days, mean):",
             why_table(rows)]
    bad = errors(rows)
    if bad:
        parts += ["", "not simulated:"] + bad
    slow = unfinished(rows)
    if slow:
        parts += ["", "no days to train (" + DASH + "):"] + slow
    parts += ["", "P50/P90: time to train with failures and restarts; $ and MWh over the whole campaign",
              BAND_NOTE + calibration_note(rows)]
    return "\n".join(parts)


def calibration_note(rows: Sequence[dict]) -> str:
    """"; calibration: ..." naming the calibration(s) the rows used."""
    used = list(dict.fromkeys(str(r["calibration"]) for r in rows if r.get("calibration")))
    return f"; calibration: {'; '.join(used)}" if used else ""


def sweep_text(rows: Sequence[dict], limit: int = 40) -> str:
    """Every row for a small sweep; for a big one, the counts by status and the fastest ``limit``."""
    if len(rows) <= limit:
        return compare_text(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    ok = [r for r in rows if r.get("status") == "ok" and num(r.get("time_to_train_days_p50")) is not None]
    ok.sort(key=lambda r: num(r["time_to_train_days_p50"]))
    head = f"{len(rows)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return "\n".join([head, f"the {min(limit, len(ok))} fastest (P50):", results_table(ok[:limit]),
                      BAND_NOTE + calibration_note(rows)])
