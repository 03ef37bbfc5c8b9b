"""Plots of one run (`trainsim run --plot DIR`): campaign timeline, time-to-train distribution,
power over a step and over the campaign. ``*_figure`` functions build the Figure (the HTML report
inlines them as SVG); ``write_run_plots`` writes PNGs. Matplotlib lives only in simulator/report/."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.errors import ConfigError
from simulator.metrics.power import campaign_levels
from simulator.report import style

STATE_COLOURS = {"up": style.GREEN, "checkpoint": style.BLUE, "down": style.VERMILION, "restart": style.ORANGE}
STATE_LABELS = {"up": "training", "checkpoint": "checkpoint", "down": "down (failure)", "restart": "restart"}
POWER_BINS = 400            # the campaign power curve is averaged into this many time bins


def _save(fig, path: Path) -> Path:
    return style.save(fig, path)


def timeline_figure(timeline: list, title: str):
    fig = style.figure(10, 2.8)
    ax = fig.add_subplot()
    for state, colour in STATE_COLOURS.items():
        spans = [(a / 86400, (b - a) / 86400) for a, b, st in timeline if st == state and b > a]
        if spans:
            ax.broken_barh(spans, (0, 1), facecolors=colour, label=STATE_LABELS[state])
    ax.set_yticks([])
    ax.set_xlabel("campaign time (days)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, frameon=False)
    ax.set_ylim(0, 1)
    return fig


def timeline_plot(timeline: list, path: Path, title: str) -> Path:
    return _save(timeline_figure(timeline, title), path)


def distribution_figure(samples: list[float], ideal: float, title: str):
    fig = style.figure(8, 4.5)
    ax = fig.add_subplot()
    ax.hist(samples, bins=min(30, max(5, len(samples) // 3)), color=style.BLUE, alpha=0.85)
    ax.axvline(ideal, color=style.BLACK, linestyle="--", label=f"failure-free {ideal:.1f} d")
    for q, ls in ((50, "-"), (90, ":")):
        v = float(np.percentile(samples, q))
        ax.axvline(v, color=style.VERMILION, linestyle=ls, label=f"P{q} {v:.1f} d")
    ax.set_xlabel("time to train (days)")
    ax.set_ylabel("campaign replicas")
    ax.set_title(title)
    ax.legend()
    return fig


def distribution_plot(samples: list[float], ideal: float, path: Path, title: str) -> Path:
    return _save(distribution_figure(samples, ideal, title), path)


def step_power_figure(times, watts, title: str):
    fig = style.figure(10, 3.5)
    ax = fig.add_subplot()
    ax.stairs(np.asarray(watts) / 1e6, np.asarray(times) * 1e3, color=style.VERMILION, baseline=None, linewidth=1.5)
    ax.set_xlabel("time in step (ms)")
    ax.set_ylabel("facility power (MW)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    return fig


def step_power_plot(times, watts, path: Path, title: str) -> Path:
    return _save(step_power_figure(times, watts, title), path)


def span_watts(timeline: list, level_w) -> np.ndarray:
    """Facility watts of each timeline span. ``level_w``: state -> watts, or for a run of phases
    a sequence of (phase start in s, state -> watts): a span draws its phase's levels (the phase
    that has begun at the span's start; a switch's save and restart count to the phase it opens)."""
    if isinstance(level_w, dict):
        return np.array([level_w[st] for _, _, st in timeline], dtype=float)
    starts = np.array([t0 for t0, _ in level_w], dtype=float)
    k = np.clip(np.searchsorted(starts, [a for a, _, _ in timeline], side="right") - 1, 0, len(starts) - 1)
    return np.array([level_w[i][1][st] for i, (_, _, st) in zip(k, timeline)], dtype=float)


def binned_power(timeline: list, level_w, bins: int = POWER_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Time-weighted mean power in ``bins`` equal slices of the campaign: (bin centres in s, watts).
    A campaign of thousands of checkpoint blips reads as its average, not as a solid block.
    ``level_w`` as for ``span_watts``."""
    if not timeline:
        return np.zeros(0), np.zeros(0)
    start = np.array([a for a, _, _ in timeline], dtype=float)
    end = np.array([b for _, b, _ in timeline], dtype=float)
    watts = span_watts(timeline, level_w)
    t0, t1 = float(start.min()), float(end.max())
    edges = np.linspace(t0, t1, bins + 1) if t1 > t0 else np.array([t0, t0 + 1.0])
    order = np.argsort(start, kind="stable")
    start, end, watts = start[order], end[order], watts[order]
    cum = np.concatenate([[0.0], np.cumsum(watts * (end - start))])   # energy at each span's start

    def energy_to(t):
        i = np.searchsorted(start, t, side="right") - 1
        i = np.clip(i, 0, len(start) - 1)
        inside = np.clip(t - start[i], 0.0, end[i] - start[i])
        return cum[i] + watts[i] * inside

    e = energy_to(edges)
    mean = np.diff(e) / np.diff(edges)
    return (edges[:-1] + edges[1:]) / 2, mean


def campaign_power_figure(timeline: list, level_w, title: str, bins: int = POWER_BINS):
    """Facility power over one campaign replica, averaged in ``bins`` slices, with every failure
    (start of a down span) and restart marked under the curve."""
    fig = style.figure(10, 4)
    ax = fig.add_subplot()
    t, w = binned_power(timeline, level_w, bins)
    ax.fill_between(t / 86400, w / 1e6, color=style.SKY, alpha=0.5, linewidth=0)
    ax.plot(t / 86400, w / 1e6, color=style.BLUE, linewidth=1.2, label=f"mean power ({bins} bins)")
    fails = [a / 86400 for a, _, st in timeline if st == "down"]
    restarts = [a / 86400 for a, _, st in timeline if st == "restart"]
    top = float(w.max()) / 1e6 if len(w) else 1.0
    if fails:
        ax.plot(fails, [top * 1.08] * len(fails), "v", color=style.VERMILION, ms=7, linestyle="none",
                label=f"failure ({len(fails)})")
    if restarts:
        ax.plot(restarts, [top * 1.16] * len(restarts), "|", color=style.ORANGE, ms=10, mew=1.5,
                linestyle="none", label=f"restart ({len(restarts)})")
    ax.set_ylim(0, top * 1.3)
    ax.set_xlabel("campaign time (days)")
    ax.set_ylabel("facility power (MW)")
    ax.set_title(title)
    ax.legend(loc="lower right", ncol=3)
    return fig


def campaign_power_plot(timeline: list, level_w, path: Path, title: str) -> Path:
    return _save(campaign_power_figure(timeline, level_w, title), path)


def power_levels(result, power):
    """Facility watts of each campaign state (metrics/power.py ``campaign_levels``); for a run of
    phases, each phase's own (its GPUs, nodes and step power) from where it begins."""
    if getattr(result, "phase_power", ()):
        return list(result.phase_power)
    return campaign_levels(power, result.energy.step_power_w["avg"])


def run_figures(result, power) -> dict:
    """name -> Figure for every chart a run supports."""
    figs = {}
    c, e, sp = result.campaign, result.energy, result.step_power
    name = result.name
    if sp is not None:
        figs["step_power"] = step_power_figure(sp.times, sp.watts, f"How does power swing within one step? ({name})")
    if c is not None:
        if c.timeline:
            figs["campaign_timeline"] = timeline_figure(c.timeline, f"Where does one campaign's time go? ({name})")
        if c.time_to_train_days_samples:
            figs["time_to_train"] = distribution_figure(
                list(c.time_to_train_days_samples), c.ideal_time_to_train_days,
                f"How long will training take? ({name}, {c.replicas} replicas)")
        if e is not None and c.timeline:
            figs["campaign_power"] = campaign_power_figure(
                c.timeline, power_levels(result, power), f"What does the campaign draw from the grid? ({name})")
    return figs


def write_run_plots(result, power, out_dir: str | Path) -> list[Path]:
    """Every plot a run supports, into ``out_dir`` (created if missing). Returns the files."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the plot folder: {exc.strerror}", source="--plot", value=str(out_dir)) from None
    return [_save(fig, out / f"{key}.png") for key, fig in run_figures(result, power).items()]
