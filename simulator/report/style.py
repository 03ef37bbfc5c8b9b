"""The look every trainsim chart shares: a colour-blind-safe palette, slide-sized fonts, money and
count axes in words ($1.2M, not 1.2e6), and figure creation / saving on an Agg canvas (no display,
no global pyplot state). Matplotlib lives only in simulator/report/.

Palette: Okabe & Ito, "Color Universal Design" (2008), the eight colours distinguishable under the
common forms of colour blindness; charts also vary marker and line style so they survive grey print.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: F401 (FuncFormatter re-exported)

BLUE, ORANGE, GREEN, VERMILION = "#0072B2", "#E69F00", "#009E73", "#D55E00"
SKY, PURPLE, YELLOW, BLACK, GREY = "#56B4E9", "#CC79A7", "#F0E442", "#000000", "#999999"
PALETTE = (BLUE, ORANGE, GREEN, VERMILION, SKY, PURPLE, YELLOW, BLACK)

RC = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "xtick.labelsize": 11,
      "ytick.labelsize": 11, "legend.fontsize": 10, "figure.titlesize": 14,
      "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "trainsim",
      "svg.fonttype": "path"}


def figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches at 100 dpi (slide size: about 10 x 5.6)."""
    import matplotlib

    matplotlib.rcParams.update(RC)
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` in the format of ``path``'s suffix (folder created); returns the path.
    SVG is written without a date so the same chart gives the same bytes."""
    from simulator.outputs import write_bytes   # the checked writer: temporary file, OSError -> exit 2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lower().lstrip(".") or "png"
    meta = {"Date": None} if fmt == "svg" else None
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata=meta)
    return write_bytes(path, buf.getvalue())


_ID = re.compile(r'\bid="([^"]+)"')


def svg(fig: Figure, prefix: str = "") -> str:
    """``fig`` as an inline SVG element (no XML prologue), for an HTML page. With ``prefix`` every
    element id, and every reference to one (``#id``, ``url(#id)``), starts with it: matplotlib numbers
    ids from 1 in each figure, so two charts on one page would share ids (invalid HTML, and a
    clip path of one chart could be taken for the other's)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    if not prefix:
        return text
    ids = set(_ID.findall(text))
    if not ids:
        return text
    refs = re.compile(r'(\bid="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r')(?=["\)])')
    return refs.sub(lambda m: m.group(1) + prefix + m.group(2), text)


def si_words(x: float, unit: str = "", digits: int = 3) -> str:
    """1234 -> '1.23k', 4.5e7 -> '45M', 2e9 -> '2B' (B = billion, as planners write money)."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{unit}{x / div:.{digits}g}{suffix}"
    return f"{unit}{x:.{digits}g}"


def money(x: float, _pos=None, digits: int = 3) -> str:
    sign = "-" if x < 0 else ""
    return sign + si_words(abs(x), "$", digits)


MONEY = FuncFormatter(lambda x, _pos=None: money(x, digits=4))
COUNT = FuncFormatter(lambda x, _pos=None: si_words(x))
GPUS = FuncFormatter(lambda x, _pos=None: f"{x:,.0f}")


def money_axis(axis) -> None:
    """A dollar axis: ticks read $500k, $1.5M, $2B (no 1e7 offset)."""
    axis.set_major_formatter(MONEY)


def count_axis(axis) -> None:
    axis.set_major_formatter(COUNT)


def few_ticks(axis, n: int = 6) -> None:
    axis.set_major_locator(MaxNLocator(n))
