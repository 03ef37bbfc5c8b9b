"""The text table of `trainsim levers` and `trainsim plan`: one row per lever, then its notes."""
from __future__ import annotations

from simulator.units import fmt_si

COLUMNS = ("lever", "params", "tokens", "steps x", "step x", "ideal d", "P50 d", "d P10–P90", "GPU-h", "MWh",
           "tCO2e", "$", "$ P10–P90", "$ x")


def _num(v, fmt: str = "{:.3g}") -> str:
    return "–" if v is None else fmt.format(v)


def _ratio(v, base) -> str:
    return "–" if v is None or not base else f"{v / base:.2f}"


def _band(m: dict, lo: str, hi: str, show) -> str:
    a, b = m.get(lo), m.get(hi)
    return "–" if a is None or b is None else f"{show(a)}–{show(b)}"


def row_cells(label: str, m: dict, base: dict) -> list[str]:
    days = m.get("time_to_train_days_p50")
    return [
        label,
        fmt_si(m["num_parameters"], billion="B"),
        fmt_si(m["train_tokens"], billion="B") if m.get("train_tokens") else "–",
        _ratio(m.get("train_steps"), base.get("train_steps")),
        _ratio(m.get("step_time_s"), base.get("step_time_s")),
        _num(m.get("ideal_time_to_train_days"), "{:.1f}"),
        _num(days, "{:.1f}"),
        _band(m, "time_to_train_days_band_p10", "time_to_train_days_band_p90", "{:.1f}".format),
        "–" if m.get("gpu_hours") is None else fmt_si(m["gpu_hours"]),
        _num(m.get("energy_mwh"), "{:,.0f}" if (m.get("energy_mwh") or 0) >= 10 else "{:.2g}"),
        _num(m.get("co2_tonnes"), "{:,.0f}" if (m.get("co2_tonnes") or 0) >= 10 else "{:.2g}"),
        "–" if m.get("cost_usd") is None else "$" + fmt_si(m["cost_usd"]),
        "–" if m.get("cost_usd_p10") is None or m.get("cost_usd_p90") is None
        else f"${fmt_si(m['cost_usd_p10'])}–{fmt_si(m['cost_usd_p90'])}",
        _ratio(m.get("cost_usd"), base.get("cost_usd")),
    ]


def format_table(rows: list[dict]) -> str:
    """``rows``: dicts with ``label``, ``metrics`` (may be empty), ``note``, ``error``; the first is the baseline."""
    base = rows[0]["metrics"]
    cells = [list(COLUMNS)]
    for r in rows:
        if r["error"]:
            cells.append([r["label"], "n/a"] + [""] * (len(COLUMNS) - 2))
        else:
            cells.append(row_cells(r["label"], r["metrics"], base))
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(c[0].ljust(widths[0]) if i == 0 else c[i].rjust(widths[i])
                               for i in range(len(c))).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    notes = [f"  {r['label']}: " + (f"n/a: {r['error']}" if r["error"] else r["note"])
             for r in rows if r["error"] or r["note"]]
    if notes:
        lines += ["", "notes:"] + notes
    lines.append("")
    lines.append("steps x and step x are ratios to the baseline (ideal days = steps x step time); "
                 "P50 includes failures and restarts; $ x = cost / baseline cost")
    if any(r["metrics"].get("cost_usd_p10") is not None for r in rows if not r["error"]):
        lines.append("P10–P90: prediction band, the model's out-of-sample error with the campaign's spread "
                     "(docs/calibration.md); the ratios compare central values")
    return "\n".join(lines)
