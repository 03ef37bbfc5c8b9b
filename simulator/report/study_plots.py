"""Charts of the study commands: compare bars, sweep lines, search Pareto scatter, size curve,
sensitivity tornado. Each ``*_figure`` function builds a matplotlib Figure (the HTML report inlines
it as SVG); each ``plot_*`` function writes it to a path and returns the path.

Rows are the flat dicts of simulator.explore.cases. Titles state the question the chart answers;
axes carry units; money reads $k/$M/$B (report/style.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg

from simulator.report import style
from simulator.report.study_tables import num

COMPARE_PANELS = (("time_to_train_days_p50", "days to train (P50)", "{:.1f} d"),
                  ("cost_usd", "cost", None), ("gpu_hours", "GPU-hours", None),
                  ("energy_mwh", "energy (MWh)", "{:,.0f}"), ("co2_tonnes", "emissions (tCO2e)", "{:,.0f}"),
                  ("step_time_s", "step time (s)", "{:.3g} s"))


# each metric's P10-P90 prediction band (simulator.calibration.bands): model error x campaign spread
BAND_OF = {"time_to_train_days_p50": ("time_to_train_days_band_p10", "time_to_train_days_band_p90"),
           "time_to_train_days_p90": ("time_to_train_days_band_p10", "time_to_train_days_band_p90"),
           "time_to_train_days_p10": ("time_to_train_days_band_p10", "time_to_train_days_band_p90"),
           "time_to_train_days": ("time_to_train_days_band_p10", "time_to_train_days_band_p90"),
           "cost_usd": ("cost_usd_p10", "cost_usd_p90"), "energy_mwh": ("energy_mwh_p10", "energy_mwh_p90"),
           "step_time_s": ("step_time_s_p10", "step_time_s_p90"), "mfu": ("mfu_p10", "mfu_p90")}


def _level(days_key: str) -> str:
    """"P90", or "band P90" for a prediction-band key."""
    level = days_key.rsplit("_", 1)[-1].upper()
    return f"band {level}" if "_band_" in days_key else level


def band(row: dict, key: str) -> tuple[float, float] | None:
    """The (P10, P90) prediction band of ``key`` in ``row``, or None when the row has none."""
    if key not in BAND_OF:
        return None
    lo, hi = (num(row.get(k)) for k in BAND_OF[key])
    return None if lo is None or hi is None else (lo, hi)


def band_errors(rows: Sequence[dict], key: str, values: Sequence[float]) -> list[list[float]] | None:
    """matplotlib ``xerr``/``yerr`` (below, above) of each row's band around ``values``; None without bands."""
    bands = [band(r, key) for r in rows]
    if not any(bands):
        return None
    return [[max(v - b[0], 0.0) if b else 0.0 for v, b in zip(values, bands)],
            [max(b[1] - v, 0.0) if b else 0.0 for v, b in zip(values, bands)]]


# formats matplotlib lists but writes only through an external program: PGF runs a LaTeX engine
# (xelatex), which a machine need not have; refused before any work rather than after it
NEEDS_PROGRAM = ("pgf",)


def plot_formats() -> tuple[str, ...]:
    """File suffixes (without the dot) a chart can be written as: matplotlib's own formats."""
    return tuple(sorted(f for f in FigureCanvasAgg.get_supported_filetypes() if f not in NEEDS_PROGRAM))


def _value(key: str, v: float, spec: str | None) -> str:
    if key == "cost_usd":
        return style.money(v)
    return style.si_words(v) if spec is None else spec.format(v)


def compare_figure(rows: Sequence[dict], title: str = ""):
    """One horizontal bar panel per metric, one bar per case, each labelled with its value and its
    change from the first case (so a 2% difference is read, not guessed); a black bar is the metric's
    P10-P90 prediction band (days: the campaign's P10-P90 where the rows have no band)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    panels = [p for p in COMPARE_PANELS if any(num(r.get(p[0])) is not None for r in ok)][:4]
    cols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // cols) if panels else 1
    bar_h = 0.42 * max(len(ok), 1) + 1.0
    fig = style.figure(12 if cols == 2 else 8, max(3.2, bar_h * nrows + 0.8))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    labels = [str(r.get("case")) for r in ok]
    ys = list(range(len(ok)))
    for ax, (key, name, spec) in zip(axes, panels):
        vals = [num(r.get(key)) for r in ok]
        shown = [v or 0.0 for v in vals]
        colours = [style.GREY if i == 0 else style.BLUE for i in ys]
        ax.barh(ys, shown, color=colours, height=0.65)
        err = band_errors(ok, key, shown)
        if err is None and key == "time_to_train_days_p50":
            err = [[max(v - (num(r.get("time_to_train_days_p10")) or v), 0) for v, r in zip(shown, ok)],
                   [max((num(r.get("time_to_train_days_p90")) or v) - v, 0) for v, r in zip(shown, ok)]]
        if err is not None:
            ax.errorbar(shown, ys, xerr=err, fmt="none", ecolor=style.BLACK, capsize=3, linewidth=1)
        top = max((v + (err[1][i] if err else 0.0) for i, v in enumerate(shown)), default=1.0)
        base = vals[0] if vals else None
        for y, v in zip(ys, vals):
            if v is None:
                ax.text(0, y, " n/a", va="center")
                continue
            text = " " + _value(key, v, spec)
            if y > 0 and base:
                text += f" ({(v - base) / base:+.1%})"
            ax.text(v + (err[1][y] if err else 0.0), y, text, va="center", fontsize=10)
        ax.set_xlim(0, top * 1.45 if top > 0 else 1)
        ax.set_yticks(ys, labels if ax.get_subplotspec().is_first_col() else [""] * len(ys))
        ax.invert_yaxis()
        ax.set_xlabel(name)
        if key == "cost_usd":
            style.money_axis(ax.xaxis)
        elif spec is None:
            style.count_axis(ax.xaxis)
        style.few_ticks(ax.xaxis, 4)
        ax.set_title(name)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"How do the cases compare? {title}".strip() + " (grey: the first case; % change from it)")
    return fig


def plot_compare(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    return style.save(compare_figure(rows, title), path)


def _float_or_none(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def sweep_figure(rows: Sequence[dict], axes_keys: Sequence[str], title: str = ""):
    """Days to train and cost against the first grid axis when it is numeric (one line per value of
    the other axes); otherwise bars by case with thinned, rotated labels so none overlap."""
    ok = [r for r in rows if r.get("status") == "ok"]
    keys = [k for k in axes_keys if any(k in r for r in ok)]
    fig = style.figure(12, 5)
    ax0, ax1 = fig.subplots(1, 2)
    xkey = keys[0] if keys else None
    numeric = xkey is not None and ok and all(_float_or_none(r.get(xkey)) is not None for r in ok)
    metrics = (("time_to_train_days_p50", "days to train (P50)"), ("cost_usd", "cost (USD)"))
    if numeric:
        groups: dict[tuple, list] = {}
        for r in ok:
            groups.setdefault(tuple((k, r.get(k)) for k in keys[1:]), []).append(r)
        markers = "osD^v<>P"
        for ax, (key, name) in zip((ax0, ax1), metrics):
            for i, (g, members) in enumerate(groups.items()):
                pts = sorted((_float_or_none(r[xkey]), num(r.get(key))) for r in members
                             if num(r.get(key)) is not None)
                label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in g) or None
                colour = style.PALETTE[i % len(style.PALETTE)]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)],
                        color=colour, label=label)
                spans = sorted((_float_or_none(r[xkey]), band(r, key)) for r in members if band(r, key))
                if spans:
                    ax.fill_between([x for x, _ in spans], [b[0] for _, b in spans], [b[1] for _, b in spans],
                                    color=colour, alpha=0.15, linewidth=0)
            xs = sorted({_float_or_none(r[xkey]) for r in ok})
            if xs and xs[0] > 0 and (xkey == "num_gpus" or xs[-1] / xs[0] >= 16):
                ax.set_xscale("log", base=2)
                ax.set_xticks(xs[::max(1, -(-len(xs) // 10))])
                ax.xaxis.set_major_formatter(style.GPUS)
                ax.minorticks_off()
            ax.set_xlabel(xkey.rsplit(".", 1)[-1].replace("_", " ") if xkey != "num_gpus" else "GPUs")
            ax.set_ylabel(name)
            style.few_ticks(ax.xaxis, 8) if ax.get_xscale() == "linear" else None
            if len(groups) > 1:
                ax.legend(fontsize=9)
    else:
        labels = [str(r.get("case")) for r in ok]
        every = max(1, len(ok) // 20)
        for ax, (key, name) in zip((ax0, ax1), metrics):
            vals = [num(r.get(key)) or 0.0 for r in ok]
            ax.bar(range(len(ok)), vals, color=style.BLUE)
            err = band_errors(ok, key, vals)
            if err is not None:
                ax.errorbar(range(len(ok)), vals, yerr=err, fmt="none", ecolor=style.BLACK, capsize=2, linewidth=1)
            ax.set_xticks(range(0, len(ok), every), labels[::every], rotation=45, ha="right", fontsize=9)
            ax.set_ylabel(name)
    style.money_axis(ax1.yaxis)
    ax0.set_title("time to train (shaded / bars: P10-P90 band)")
    ax1.set_title("cost of the campaign")
    for ax, (key, _) in zip((ax0, ax1), metrics):   # an empty panel says why rather than show a bare axis
        if not any(num(r.get(key)) is not None for r in ok):
            why = ("no case ran" if not ok else "no case has a value:\nthe workload sets no training length,\n"
                   "or no campaign finishes")
            ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color=style.BLACK,
                    fontsize=10)
            ax.set_yticks([])
    fig.suptitle(f"How do time and cost change across the sweep? {title}".strip())
    return fig


def plot_sweep(rows: Sequence[dict], axes_keys: Sequence[str], path: str | Path, title: str = "") -> Path:
    return style.save(sweep_figure(rows, axes_keys, title), path)


def pareto_figure(rows: Sequence[dict], front: Sequence[int], best: int | None, closed_form: Sequence[tuple],
                  title: str = "", days_key: str = "time_to_train_days_p50", shortlisted: Sequence[tuple] = ()):
    """Left: every fitting layout's closed-form step time vs step energy (grey), the re-simulated
    ones in blue. Right: the re-simulated layouts, days vs cost, the Pareto front joined."""
    fig = style.figure(12, 5.2)
    ax0, ax1 = fig.subplots(1, 2)
    if closed_form:
        ax0.scatter([t for t, _ in closed_form], [e / 3.6e6 for _, e in closed_form], s=8, c=style.GREY,
                    alpha=0.5, label="layouts that fit in memory")
    if shortlisted:
        ax0.scatter([t for t, _ in shortlisted], [e / 3.6e6 for _, e in shortlisted], s=40, c=style.BLUE,
                    marker="D", label="re-simulated")
    if closed_form or shortlisted:
        ax0.set_xscale("log")
        ax0.set_yscale("log")
        ax0.legend()
    ax0.set_xlabel("step time (s, closed form)")
    ax0.set_ylabel("energy per step (kWh, closed form)")
    ax0.set_title("the search space")
    pts = [(i, num(r.get(days_key)), num(r.get("cost_usd"))) for i, r in enumerate(rows)]
    pts = [p for p in pts if p[1] is not None and p[2] is not None]
    if pts:
        ax1.scatter([p[1] for p in pts], [p[2] for p in pts], s=50, c=style.BLUE, label="re-simulated layout")
        chosen = [rows[p[0]] for p in pts]
        xerr, yerr = band_errors(chosen, days_key, [p[1] for p in pts]), band_errors(chosen, "cost_usd", [p[2] for p in pts])
        if xerr is not None or yerr is not None:
            ax1.errorbar([p[1] for p in pts], [p[2] for p in pts], xerr=xerr, yerr=yerr, fmt="none",
                         ecolor=style.GREY, capsize=2, linewidth=0.8, label="P10-P90 band")
        fr = sorted((p for p in pts if p[0] in set(front)), key=lambda p: p[1])
        ax1.plot([p[1] for p in fr], [p[2] for p in fr], "-o", color=style.ORANGE, mfc="none", ms=12,
                 label="Pareto front")
        for p in pts:
            if p[0] == best:
                ax1.scatter([p[1]], [p[2]], marker="*", s=300, c=style.VERMILION, zorder=4, label="best")
                ax1.annotate(str(rows[p[0]].get("layout") or ""), (p[1], p[2]), textcoords="offset points",
                             xytext=(8, 8), fontsize=10)
        ax1.legend()
    style.money_axis(ax1.yaxis)
    ax1.set_xlabel(f"days to train ({_level(days_key)}, with failures)")
    ax1.set_ylabel("cost of the campaign")
    ax1.set_title("re-simulated layouts")
    fig.suptitle(f"Which parallel layout is fastest and cheapest? {title}".strip())
    return fig


def plot_pareto(rows: Sequence[dict], front: Sequence[int], best: int | None, closed_form: Sequence[tuple],
                path: str | Path, title: str = "", days_key: str = "time_to_train_days_p50",
                shortlisted: Sequence[tuple] = ()) -> Path:
    return style.save(pareto_figure(rows, front, best, closed_form, title, days_key, shortlisted), path)


def size_figure(rows: Sequence[dict], deadline: float | None, budget: float | None, answer: int | None,
                days_key: str = "time_to_train_days_p50", title: str = ""):
    """Days to train (left axis) and cost (right axis) against the GPU count, with the deadline,
    the budget and the answer; x ticks are the GPU counts tried, legend outside the data."""
    fig = style.figure(10, 5.6)
    ax = fig.add_subplot()
    sim = [r for r in rows if r.get("status") == "ok" and num(r.get(days_key)) is not None]
    bound = [r for r in rows if num(r.get("closed_form_days")) is not None]
    handles = []
    handles += ax.plot([r["num_gpus"] for r in bound], [num(r["closed_form_days"]) for r in bound], ":",
                       color=style.GREY, linewidth=2, label="failure-free days (closed form)")
    handles += ax.plot([r["num_gpus"] for r in sim], [num(r[days_key]) for r in sim], "o-", color=style.BLUE,
                       label=f"days with failures ({_level(days_key)})")
    banded = [(r["num_gpus"], band(r, days_key)) for r in sim if band(r, days_key)]
    if banded:
        handles.append(ax.fill_between([n for n, _ in banded], [b[0] for _, b in banded], [b[1] for _, b in banded],
                                       color=style.BLUE, alpha=0.15, linewidth=0, label="days P10-P90 band"))
    if deadline:
        handles.append(ax.axhline(deadline, color=style.VERMILION, linestyle="--", label=f"deadline {deadline:g} d"))
    if answer is not None:
        handles.append(ax.axvline(rows[answer]["num_gpus"], color=style.GREEN, linewidth=2,
                                  label=f"answer: {rows[answer]['num_gpus']:,} GPUs"))
    counts = sorted({r["num_gpus"] for r in bound + sim})
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if counts:
        every = max(1, -(-len(counts) // 10))
        ax.set_xticks(counts[::every])
        ax.xaxis.set_major_formatter(style.GPUS)
        ax.xaxis.set_minor_formatter(style.FuncFormatter(lambda *_: ""))
        ax.tick_params(axis="x", rotation=30)
    ax.set_xlabel("GPUs")
    ax.set_ylabel("days to train (log scale)")
    ax.yaxis.set_major_formatter(style.FuncFormatter(lambda v, _p=None: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(style.FuncFormatter(lambda v, _p=None: f"{v:,.0f}" if str(round(v))[0] in "25" else ""))
    costed = [r for r in sim if num(r.get("cost_usd")) is not None]
    if costed:
        ax2 = ax.twinx()
        ax2.spines["right"].set_visible(True)
        handles += ax2.plot([r["num_gpus"] for r in costed], [num(r["cost_usd"]) for r in costed], "s--",
                            color=style.ORANGE, label="cost (right axis)")
        cb = [(r["num_gpus"], band(r, "cost_usd")) for r in costed if band(r, "cost_usd")]
        if cb:
            ax2.fill_between([n for n, _ in cb], [b[0] for _, b in cb], [b[1] for _, b in cb],
                             color=style.ORANGE, alpha=0.12, linewidth=0)
        if budget:
            handles.append(ax2.axhline(budget, color=style.ORANGE, linestyle=":", linewidth=2,
                                       label=f"budget {style.money(budget)}"))
        style.money_axis(ax2.yaxis)
        ax2.set_ylabel("cost of the campaign")
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=10)
    ax.set_title(f"How many GPUs meet the goal? {title}".strip())
    return fig


def plot_size(rows: Sequence[dict], path: str | Path, deadline: float | None, budget: float | None,
              answer: int | None, days_key: str = "time_to_train_days_p50", title: str = "") -> Path:
    return style.save(size_figure(rows, deadline, budget, answer, days_key, title), path)


def tornado_figure(labels: Sequence[str], time_deltas: Sequence[tuple], cost_deltas: Sequence[tuple],
                   percent: float, title: str = ""):
    """Two tornado panels: the change in days and in cost when each input moves -X% / +X%."""
    fig = style.figure(12, max(3.5, 0.5 * len(labels) + 2.0))
    axes = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(labels)))
    for ax, deltas, name in ((axes[0], time_deltas, "change in days to train"),
                             (axes[1], cost_deltas, "change in cost")):
        low = [d[0] or 0.0 for d in deltas]
        high = [d[1] or 0.0 for d in deltas]
        ax.barh(ys, low, color=style.BLUE, label=f"input -{percent:g}%")
        ax.barh(ys, high, color=style.ORANGE, hatch="//", label=f"input +{percent:g}%")
        ax.axvline(0, color=style.BLACK, linewidth=0.8)
        ax.set_xlabel(name + (" (days)" if ax is axes[0] else ""))
        ax.set_title(name)
        ax.legend(loc="lower right")
        style.few_ticks(ax.xaxis, 5)
    style.money_axis(axes[1].xaxis)
    axes[0].set_yticks(ys, list(labels))
    axes[0].invert_yaxis()
    fig.suptitle(f"Which inputs move time and cost the most? {title}".strip())
    return fig


def plot_tornado(labels: Sequence[str], time_deltas: Sequence[tuple], cost_deltas: Sequence[tuple],
                 path: str | Path, percent: float, title: str = "") -> Path:
    return style.save(tornado_figure(labels, time_deltas, cost_deltas, percent, title), path)
