"""The shareable report: `--report FILE.html` on `run` and on every study writes one self-contained
HTML page (charts inline as SVG, tables, the inputs, the assumptions filled in, the validation
error band, the software version), rendered from report/templates/report.html.j2 with Jinja2.

Nothing on the page reaches the network: no scripts, fonts or images from elsewhere.
"""
from __future__ import annotations

import functools
import math
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from simulator.errors import ConfigError

SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class Table:
    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence]
    note: str = ""


@dataclass(frozen=True)
class Chart:
    caption: str
    svg: str


@dataclass
class Report:
    title: str
    question: str
    engine: str = ""
    answer: str = ""
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    text: str = ""
    inputs: list = field(default_factory=list)          # [{"name", "text"}]
    assumptions: dict = field(default_factory=dict)
    validation: bool = True

    def add_figure(self, fig, caption: str) -> None:
        from simulator.report.style import svg

        self.figures.append(Chart(caption, svg(fig, prefix=f"c{len(self.figures) + 1}-")))


def check_report_path(path: str | Path | None, force: bool, option: str = "--report") -> None:
    """Before any work: an .html file name in a folder that exists or can be made, and not an
    existing file unless ``force`` (never overwrite silently)."""
    if path is None:
        return
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise ConfigError("the report is an HTML file", source=option, value=str(path),
                          expected="a file name ending in .html")
    from simulator.outputs import check_output

    # a regular file name (not a folder, not an existing file without force) in a folder we can write in
    check_output(p, option, force=force)


@functools.lru_cache(maxsize=1)
def validation_band() -> dict:
    """Errors of the closed form against the published runs bundled with trainsim (the same rows
    as `trainsim validate --fast`), as text for the page."""
    from simulator.validation.runner import run_all

    rows = run_all(engine="analytical")
    errs = sorted(r.error for r in rows)
    absolute = sorted(abs(e) for e in errs)

    def pct(q: float) -> str:
        k = min(len(absolute) - 1, max(0, math.ceil(q * len(absolute)) - 1))
        return f"±{absolute[k]:.1%}"

    worst = max(rows, key=lambda r: abs(r.error))
    return {"rows": len(rows), "engine": "closed-form step", "mape": f"{sum(absolute) / len(absolute):.1%}",
            "p50": pct(0.5), "p90": pct(0.9), "low": f"{errs[0]:+.1%}", "high": f"{errs[-1]:+.1%}",
            "worst": f"{worst.run} ({worst.source}) {worst.error:+.1%}"}


def input_files(*paths) -> list[dict]:
    """The text of each input file (workload, cluster YAML), in order, once each."""
    out, seen = [], set()
    for p in paths:
        if p is None:
            continue
        path = Path(str(p))
        key = str(path.resolve()) if path.exists() else str(p)
        if key in seen:
            continue
        seen.add(key)
        try:
            out.append({"name": str(p), "text": path.read_text(encoding="utf-8")})
        except OSError:
            out.append({"name": str(p), "text": "(not a file that could be read)"})
    return out


def render(report: Report, argv: Sequence[str] | None = None) -> str:
    import jinja2
    import matplotlib

    from simulator import __version__

    env = jinja2.Environment(loader=jinja2.PackageLoader("simulator.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    return env.get_template("report.html.j2").render(
        title=report.title, question=report.question, engine=report.engine or "n/a", answer=report.answer,
        figures=report.figures, tables=report.tables, text=report.text, inputs=report.inputs,
        assumptions={k: _cell(v) for k, v in report.assumptions.items()},
        validation=validation_band() if report.validation else None,
        command="trainsim " + " ".join(shlex.quote(a) for a in argv), version=__version__,
        python=platform.python_version(), matplotlib=matplotlib.__version__, jinja=jinja2.__version__)


def write(report: Report, path: str | Path, force: bool = False, argv: Sequence[str] | None = None) -> Path:
    """Render ``report`` and write it to ``path`` (checked again: never overwrite without ``force``)."""
    check_report_path(path, force)
    from simulator.outputs import write_text

    return write_text(path, render(report, argv))   # whole or not at all (simulator/outputs.py)


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def rows_table(rows: Sequence[dict], caption: str, columns: Sequence[tuple[str, str]]) -> Table:
    """A table of study rows (flat dicts), the given (key, heading) columns, numbers formatted."""
    from simulator.report.study_tables import num

    body = []
    for r in rows:
        cells = []
        for key, _ in columns:
            v = r.get(key)
            x = num(v) if not isinstance(v, bool) else None
            if key == "cost_usd" and x is not None:
                from simulator.report.style import money
                cells.append(money(x))
            elif key == "mfu" and x is not None:
                cells.append(f"{x:.1%}")
            elif x is not None and not isinstance(v, str):
                cells.append(f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}")
            else:
                cells.append("–" if v in (None, "") else str(v))
        body.append(cells)
    return Table(caption, [h for _, h in columns], body)


STUDY_COLUMNS = (("case", "case"), ("status", "status"), ("layout", "layout"), ("num_gpus", "GPUs"),
                 ("step_time_s", "step (s)"), ("mfu", "MFU"), ("memory_per_gpu_gib", "GiB/GPU"),
                 ("time_to_train_days_p10", "P10 days"), ("time_to_train_days_p50", "P50 days"),
                 ("time_to_train_days_p90", "P90 days"), ("ettr", "ETTR"), ("gpu_hours", "GPU-hours"),
                 ("energy_mwh", "MWh"), ("co2_tonnes", "tCO2e"), ("cost_usd", "cost"))
