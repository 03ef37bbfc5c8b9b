"""Charts of the study commands: compare bars, search Pareto scatter, size curve, sensitivity tornado.

Matplotlib through a Figure on an Agg canvas (no display, no global pyplot state). Each function
takes rows (flat dicts of simulator.explore.cases) and a path, writes the image and returns it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.outputs import save_figure
from simulator.report.study_tables import num

COMPARE_PANELS = (("time_to_train_days_p50", "days to train (P50)"), ("gpu_hours", "GPU-hours"),
                  ("energy_mwh", "MWh"), ("co2_tonnes", "tCO2e"), ("cost_usd", "USD"))


def plot_formats() -> tuple[str, ...]:
    """File suffixes (without the dot) a chart can be written as: matplotlib's formats."""
    return tuple(sorted(FigureCanvasAgg.get_supported_filetypes()))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path)


def plot_compare(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """One horizontal bar panel per metric (days with a P10-P90 whisker), one bar per case."""
    ok = [r for r in rows if r.get("status") == "ok"]
    panels = [(k, name) for k, name in COMPARE_PANELS if any(num(r.get(k)) is not None for r in ok)]
    panels = panels or [("step_time_s", "step time (s)")]
    fig = _figure(3.0 * len(panels) + 2.5, 0.45 * max(len(ok), 1) + 1.6)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    labels = [str(r.get("case")) for r in ok]
    for ax, (key, name) in zip(axes, panels):
        vals = [num(r.get(key)) or 0.0 for r in ok]
        ax.barh(range(len(ok)), vals, color="tab:blue")
        if key == "time_to_train_days_p50":
            lo = [v - (num(r.get("time_to_train_days_p10")) or v) for v, r in zip(vals, ok)]
            hi = [(num(r.get("time_to_train_days_p90")) or v) - v for v, r in zip(vals, ok)]
            ax.errorbar(vals, range(len(ok)), xerr=[lo, hi], fmt="none", ecolor="black", capsize=3)
        ax.set_title(name, fontsize="medium")
        ax.invert_yaxis()
    axes[0].set_yticks(range(len(ok)), labels, fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_pareto(rows: Sequence[dict], front: Sequence[int], best: int | None, closed_form: Sequence[tuple],
                path: str | Path, title: str = "", days_key: str = "time_to_train_days_p50",
                shortlisted: Sequence[tuple] = ()) -> Path:
    """Left: every fitting layout's closed-form step time vs step energy (grey), the re-simulated
    ones in blue. Right: the re-simulated layouts, days vs cost, coloured by energy, front joined."""
    fig = _figure(12, 5)
    ax0, ax1 = fig.subplots(1, 2)
    if closed_form:
        ax0.scatter([t for t, _ in closed_form], [e / 3.6e6 for _, e in closed_form], s=6, c="lightgray",
                    label="fitting layouts")
    if shortlisted:
        ax0.scatter([t for t, _ in shortlisted], [e / 3.6e6 for _, e in shortlisted], s=30, c="tab:blue",
                    label="re-simulated")
    if closed_form or shortlisted:
        ax0.set_xscale("log")
        ax0.set_yscale("log")
        ax0.legend(fontsize="small")
    ax0.set_xlabel("step time (s, closed form)")
    ax0.set_ylabel("step energy (kWh, closed form)")
    ax0.set_title("search space")
    pts = [(i, num(r.get(days_key)), num(r.get("cost_usd")), num(r.get("energy_mwh"))) for i, r in enumerate(rows)]
    pts = [p for p in pts if p[1] is not None and p[2] is not None]
    if pts:
        sc = ax1.scatter([p[1] for p in pts], [p[2] for p in pts], c=[p[3] or 0.0 for p in pts], cmap="viridis", s=40)
        fig.colorbar(sc, ax=ax1, label="MWh")
        fr = sorted((p for p in pts if p[0] in set(front)), key=lambda p: p[1])
        ax1.plot([p[1] for p in fr], [p[2] for p in fr], "r-o", mfc="none", ms=10, label="Pareto front")
        for p in pts:
            if p[0] == best:
                ax1.scatter([p[1]], [p[2]], marker="*", s=250, c="red", label="best")
        ax1.legend(fontsize="small")
    ax1.set_xlabel("days to train (with failures)")
    ax1.set_ylabel("cost (USD)")
    ax1.set_title("re-simulated layouts")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_size(rows: Sequence[dict], path: str | Path, deadline: float | None, budget: float | None,
              answer: int | None, days_key: str = "time_to_train_days_p50", title: str = "") -> Path:
    """Days to train and cost against the GPU count (log scale), with the deadline and budget."""
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    sim = [r for r in rows if r.get("status") == "ok" and num(r.get(days_key)) is not None]
    bound = [r for r in rows if num(r.get("closed_form_days")) is not None]
    ax.plot([r["num_gpus"] for r in bound], [num(r["closed_form_days"]) for r in bound], ":", color="gray",
            label="failure-free (closed form)")
    ax.plot([r["num_gpus"] for r in sim], [num(r[days_key]) for r in sim], "o-", color="tab:blue",
            label=f"with failures ({days_key.rsplit('_', 1)[-1]})")
    if deadline:
        ax.axhline(deadline, color="tab:red", linestyle="--", label=f"deadline {deadline:g} d")
    if answer is not None:
        ax.axvline(rows[answer]["num_gpus"], color="tab:green", label=f"answer {rows[answer]['num_gpus']} GPUs")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("days to train")
    costed = [r for r in sim if num(r.get("cost_usd")) is not None]
    if costed:
        ax2 = ax.twinx()
        ax2.plot([r["num_gpus"] for r in costed], [num(r["cost_usd"]) for r in costed], "s--", color="tab:orange",
                 label="cost")
        if budget:
            ax2.axhline(budget, color="tab:orange", linestyle=":", label="budget")
        ax2.set_ylabel("cost (USD)")
        ax2.legend(loc="lower left", fontsize="small")
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_tornado(labels: Sequence[str], time_deltas: Sequence[tuple], cost_deltas: Sequence[tuple],
                 path: str | Path, percent: float, title: str = "") -> Path:
    """Two tornado panels: the change in days and in cost when each input moves -X% / +X%."""
    fig = _figure(11, 0.5 * len(labels) + 1.8)
    axes = fig.subplots(1, 2, sharey=True)
    ys = range(len(labels))
    for ax, deltas, name in ((axes[0], time_deltas, "days to train"), (axes[1], cost_deltas, "cost (USD)")):
        low = [d[0] or 0.0 for d in deltas]
        high = [d[1] or 0.0 for d in deltas]
        ax.barh(ys, low, color="tab:blue", label=f"-{percent:g}%")
        ax.barh(ys, high, color="tab:orange", label=f"+{percent:g}%")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"change in {name}", fontsize="medium")
        ax.legend(fontsize="small")
    axes[0].set_yticks(list(ys), list(labels))
    axes[0].invert_yaxis()
    if title:
        fig.suptitle(title)
    return _save(fig, path)
