"""Plots of one run (`trainsim run --plot DIR`): campaign timeline, time-to-train distribution,
power over a step and over the campaign. Matplotlib lives only in simulator/report/."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.errors import ConfigError
from simulator.outputs import save_figure

STATE_COLOURS = {"up": "tab:green", "checkpoint": "tab:blue", "down": "tab:red", "restart": "tab:orange"}


def _figure(width: float = 10, height: float = 3.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path)


def timeline_plot(timeline: list, path: Path, title: str) -> Path:
    fig = _figure(10, 2.8)
    ax = fig.add_subplot()
    for state, colour in STATE_COLOURS.items():
        spans = [(a / 86400, (b - a) / 86400) for a, b, st in timeline if st == state and b > a]
        if spans:
            ax.broken_barh(spans, (0, 1), facecolors=colour, label=state)
    ax.set_yticks([])
    ax.set_xlabel("days")
    ax.set_title(title)
    ax.legend(loc="upper right", ncol=4, fontsize="small")
    ax.set_ylim(0, 1.6)
    return _save(fig, path)


def distribution_plot(samples: list[float], ideal: float, path: Path, title: str) -> Path:
    fig = _figure(6, 3.5)
    ax = fig.add_subplot()
    ax.hist(samples, bins=min(30, max(5, len(samples) // 3)), color="tab:blue", alpha=0.8)
    ax.axvline(ideal, color="black", linestyle="--", label=f"ideal {ideal:.1f} d")
    ax.set_xlabel("time to train (days)")
    ax.set_ylabel("replicas")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def step_power_plot(times, watts, path: Path, title: str) -> Path:
    fig = _figure(10, 3)
    ax = fig.add_subplot()
    ax.stairs(watts / 1e6, times * 1e3, color="tab:red", baseline=None)
    ax.set_xlabel("time in step (ms)")
    ax.set_ylabel("facility power (MW)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    return _save(fig, path)


def campaign_power_plot(timeline: list, level_w: dict, path: Path, title: str) -> Path:
    fig = _figure(10, 3)
    ax = fig.add_subplot()
    xs, ys = [], []
    for a, b, st in timeline:
        xs += [a / 86400, b / 86400]
        ys += [level_w[st] / 1e6] * 2
    ax.plot(xs, ys, color="tab:red", linewidth=0.8)
    ax.set_xlabel("days")
    ax.set_ylabel("facility power (MW)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    return _save(fig, path)


def write_run_plots(result, power, out_dir: str | Path) -> list[Path]:
    """Every plot a run supports, into ``out_dir`` (created if missing). Returns the files."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the plot folder: {exc.strerror}", source="--plot", value=str(out_dir)) from None
    files = []
    c, e, sp = result.campaign, result.energy, result.step_power
    name = result.name
    if sp is not None:
        files.append(step_power_plot(sp.times, sp.watts, out / "step_power.png", f"{name}: power over one step"))
    if c is not None:
        if c.timeline:
            files.append(timeline_plot(c.timeline, out / "campaign_timeline.png", f"{name}: one campaign replica"))
        if c.time_to_train_days_samples:
            files.append(distribution_plot(list(c.time_to_train_days_samples), c.ideal_time_to_train_days,
                                           out / "time_to_train.png", f"{name}: {c.replicas} replicas"))
        if e is not None and c.timeline:
            levels = {"up": e.step_power_w["avg"], "checkpoint": power.facility(power.gpus * power.gpu_watts(0)),
                      "down": power.idle_facility(), "restart": power.idle_facility()}
            files.append(campaign_power_plot(c.timeline, levels, out / "campaign_power.png",
                                             f"{name}: power over one campaign replica"))
    return files
