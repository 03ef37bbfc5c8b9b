"""The chart of `trainsim levers --plot FILE`: each lever's days, GPU-hours, energy, carbon and
money relative to the baseline (matplotlib, Agg canvas; nothing else in trainsim plots)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.outputs import save_figure

PANELS = (("time_to_train_days_p50", "days (P50)"), ("gpu_hours", "GPU-hours"), ("energy_mwh", "MWh"),
          ("co2_tonnes", "tCO2e"), ("cost_usd", "USD"))


def plot_levers(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Horizontal bars, one panel per metric, each lever's value over the baseline's (baseline = 1).
    ``rows`` as for report/lever_table.format_table; rows with an error are left out."""
    ok = [r for r in rows if not r["error"]]
    base = ok[0]["metrics"]
    panels = [(k, name) for k, name in PANELS if base.get(k)]
    labels = [r["label"] for r in ok][::-1]
    fig = Figure(figsize=(3.2 * len(panels) + 2.5, 0.45 * len(ok) + 1.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (key, name) in zip(axes, panels):
        vals = [(r["metrics"].get(key) or 0.0) / base[key] for r in ok][::-1]
        colours = ["tab:gray" if lab == ok[0]["label"] else "tab:blue" for lab in labels]
        ax.barh(range(len(vals)), vals, color=colours)
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize="small")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlim(0, max(max(vals) * 1.25, 1.3))
        ax.set_title(f"{name} / baseline", fontsize="medium")
    axes[0].set_yticks(range(len(labels)))
    axes[0].set_yticklabels(labels)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
