"""The HTML report in a real browser: headless Chromium loads a generated report with no console
messages and no network, and its charts render (coloured pixels in the screenshot, one band per
chart). Skips, saying why, only where no Chromium is installed (.ci/run installs Debian's)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from simulator.cli import main

ROOT = Path(__file__).resolve().parents[1]
W8 = str(ROOT / "workloads" / "llama3-8b.yaml")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser installed (looked for " + ", ".join(BROWSERS) + "); "
                ".ci/run installs Debian's chromium: apt-get install -y chromium")


def shoot(page: Path, png: Path, height: int = 4000) -> str:
    """Screenshot ``page`` with every host name unresolvable (so any network request fails and is
    logged); returns the console messages the page produced."""
    cmd = [browser(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--window-size=1300,{height}", f"--screenshot={png}", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=png.parent)
    assert png.exists(), f"no screenshot; browser said:\n{out.stderr[-2000:]}"
    return "\n".join(line for line in out.stderr.splitlines() if ":CONSOLE" in line)


def coloured_rows(png: Path) -> np.ndarray:
    """Per pixel row of the screenshot: how many pixels are clearly coloured (not white/grey/black)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3].astype(float)
    saturation = img.max(axis=2) - img.min(axis=2)
    return (saturation > 0.25).sum(axis=1)


def bands(counts: np.ndarray, least: int = 200, gap: int = 25, tall: int = 40) -> list[tuple[int, int]]:
    """Vertical runs of rows with coloured pixels (a run ends after ``gap`` rows without), keeping
    those at least ``tall`` rows high holding at least ``least`` coloured pixels (so the thin
    coloured rules under headings do not count)."""
    runs, start, last = [], None, -gap - 1
    for y, c in enumerate(counts):
        if c > 0:
            if start is None or y - last > gap:
                if start is not None:
                    runs.append((start, last))
                start = y
            last = y
    if start is not None:
        runs.append((start, last))
    return [(a, b) for a, b in runs if b - a + 1 >= tall and counts[a:b + 1].sum() >= least]


def test_detects_console_errors_and_blank_pages(tmp_path):
    """The checks can fail: a page with a script error is caught, a page without charts has no bands."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>plain text</p><script>missingFunction()</script></body></html>")
    console = shoot(bad, tmp_path / "bad.png", height=600)
    assert "missingFunction" in console
    assert bands(coloured_rows(tmp_path / "bad.png")) == []


def test_run_report_loads_cleanly_and_its_charts_render(tmp_path, capsys):
    page = tmp_path / "run.html"
    assert main(["run", W8, "--fast", "--replicas", "4", "--report", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    # self-contained: no scripts, no external style sheets, images or fonts
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?https?:", html)
    charts = html.count('<figure class="chart"')
    assert charts >= 3
    png = tmp_path / "run.png"
    console = shoot(page, png)
    assert console == "", f"the report logged to the console:\n{console}"
    found = bands(coloured_rows(png))
    # every chart is a band of coloured pixels (the thin coloured rules under headings are too small)
    assert len(found) >= charts, f"{charts} charts on the page but {len(found)} rendered regions: {found}"


def test_study_report_renders(tmp_path, capsys):
    page = tmp_path / "compare.html"
    assert main(["compare", W8, "--vary", "parallelism.micro_batch_size=1,2", "--fast", "--replicas", "2",
                 "--workers", "1", "--no-progress", "--report", str(page)]) == 0
    png = tmp_path / "compare.png"
    assert shoot(page, png, height=2500) == ""
    assert len(bands(coloured_rows(png))) >= 1
