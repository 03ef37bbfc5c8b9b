"""The chart of `trainsim levers --plot FILE`: each lever's days, GPU-hours, energy, carbon and
money relative to the baseline (matplotlib, Agg canvas; nothing else in trainsim plots)."""
from __future__ import annotations

from pathlib import Path

from simulator.report import style


PANELS = (("time_to_train_days_p50", "days (P50)"), ("gpu_hours", "GPU-hours"), ("energy_mwh", "MWh"),
          ("co2_tonnes", "tCO2e"), ("cost_usd", "cost"))
# the P10-P90 prediction band of a panel's metric (simulator.calibration.bands), drawn as a black bar
BANDS = {"time_to_train_days_p50": ("time_to_train_days_band_p10", "time_to_train_days_band_p90"),
         "energy_mwh": ("energy_mwh_p10", "energy_mwh_p90"), "cost_usd": ("cost_usd_p10", "cost_usd_p90")}


def plot_levers(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Write levers_figure(rows, title) to ``path``."""
    return style.save(levers_figure(rows, title), path)


def levers_figure(rows: list[dict], title: str = ""):
    """Horizontal bars, one panel per metric, each lever's value over the baseline's (baseline = 1).
    ``rows`` as for report/lever_table.format_table; rows with an error are left out."""
    ok = [r for r in rows if not r["error"]]
    base = ok[0]["metrics"]
    panels = [(k, name) for k, name in PANELS if base.get(k)]
    labels = [r["label"] for r in ok][::-1]
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = style.figure(13, (0.45 * len(ok) + 1.4) * nrows + 0.8)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, (key, name) in zip(axes, panels):
        vals = [(r["metrics"].get(key) or 0.0) / base[key] for r in ok][::-1]
        colours = [style.GREY if lab == ok[0]["label"] else (style.GREEN if v < 1 else style.VERMILION)
                   for lab, v in zip(labels, vals)]
        ax.barh(range(len(vals)), vals, color=colours)
        top, ends = max(vals), list(vals)
        if key in BANDS:
            lo_k, hi_k = BANDS[key]
            spans = [(r["metrics"].get(lo_k), r["metrics"].get(hi_k)) for r in ok][::-1]
            if any(a is not None and b is not None for a, b in spans):
                below = [v - a / base[key] if a is not None and b is not None else 0.0 for v, (a, b) in zip(vals, spans)]
                above = [b / base[key] - v if a is not None and b is not None else 0.0 for v, (a, b) in zip(vals, spans)]
                ax.errorbar(vals, range(len(vals)), xerr=[[max(x, 0.0) for x in below], [max(x, 0.0) for x in above]],
                            fmt="none", ecolor=style.BLACK, capsize=3, linewidth=1)
                ends = [v + max(x, 0.0) for v, x in zip(vals, above)]
                top = max(ends)
        for y, v in enumerate(vals):
            ax.text(ends[y], y, f" {v:.2f}x ({v - 1:+.0%})", va="center", fontsize=10)
        ax.axvline(1.0, color=style.BLACK, linewidth=0.8)
        ax.set_xlim(0, max(top * 1.45, 1.5))
        ax.set_xlabel(f"{name}, x baseline")
        ax.set_title(name)
        ax.set_yticks(range(len(labels)), labels if ax.get_subplotspec().is_first_col() else [""] * len(labels))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"What does each lever save against the baseline? {title}".strip()
                 + " (green: cheaper/faster; black: P10-P90 band)")
    return fig
