"""`--report FILE.html` on run and on every study; the chart helpers behind it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simulator.cli import main
from simulator.report import style
from simulator.report.plots import binned_power

ROOT = Path(__file__).resolve().parents[1]
W8 = str(ROOT / "workloads" / "llama3-8b.yaml")
QUICK = ["--fast", "--replicas", "2", "--workers", "1", "--no-progress"]

STUDIES = {
    "compare": ["compare", W8, "--vary", "parallelism.micro_batch_size=1,2", *QUICK],
    "sweep": ["sweep", W8, "--grid", "num_gpus=256,512", *QUICK],
    "search": ["search", W8, "--gpus", "256", "--top", "2", "--tp", "1,2", "--pp", "1", *QUICK],
    "size": ["size", W8, "--deadline", "40d", "--counts", "256,512", *QUICK],
    "sensitivity": ["sensitivity", W8, "--inputs", "nic,gemm", *QUICK],
    "levers": ["levers", W8, "--fast", "--replicas", "2", "--only", "fp8"],
}


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_writes_a_self_contained_report(name, tmp_path, capsys):
    page = tmp_path / f"{name}.html"
    assert main(STUDIES[name] + ["--report", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html and "<script" not in html
    for part in ('id="validation"', 'id="inputs"', "trainsim 0.", "Every case", "llama3-8b"):
        assert part in html, part
    assert "mean absolute error" in html
    assert f"wrote {page}" in capsys.readouterr().err


def test_run_report_has_inputs_assumptions_and_validation(tmp_path, capsys):
    page = tmp_path / "run.html"
    assert main(["run", W8, "--fast", "--replicas", "2", "--report", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "Assumptions filled in" in html and "model.kv_channels" in html
    assert "num_gpus: 512" in html or "num_gpus" in html           # the workload YAML itself
    assert html.count('<figure class="chart"') >= 3
    assert "days at P50" in html


def test_report_never_overwrites_without_force(tmp_path, capsys):
    page = tmp_path / "r.html"
    page.write_text("keep me")
    assert main(["run", W8, "--fast", "--replicas", "2", "--report", str(page)]) == 2
    assert "--report: the file exists" in capsys.readouterr().err
    assert page.read_text() == "keep me"
    assert main(["sensitivity", W8, "--inputs", "nic", *QUICK, "--report", str(page)]) == 2
    assert page.read_text() == "keep me"
    assert main(["run", W8, "--fast", "--replicas", "2", "--report", str(page), "--force"]) == 0
    assert page.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("path,message", [("r.txt", "the report is an HTML file"),
                                          (str(ROOT / "README.md" / "r.html"), "is not a folder")])
def test_bad_report_paths_exit_2_before_any_work(path, message, capsys):
    assert main(["compare", W8, "--vary", "parallelism.micro_batch_size=1,2", *QUICK, "--report", path]) == 2
    assert message in capsys.readouterr().err


def test_html_escapes_the_inputs(tmp_path):
    from simulator.report import html

    rep = html.Report(title="<b>t</b>", question="q", inputs=[{"name": "x", "text": "<script>x</script>"}],
                      validation=False)
    text = html.render(rep, argv=["run", "<x>"])
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;t&lt;/b&gt;" in text


@pytest.mark.parametrize("value,text", [(999, "$999"), (1500, "$1.5k"), (4.5e7, "$45M"), (2e9, "$2B"),
                                        (-2.5e6, "-$2.5M"), (0, "$0")])
def test_money_reads_in_words(value, text):
    assert style.money(value) == text


spans = st.lists(st.tuples(st.floats(1.0, 1e5), st.sampled_from(["up", "checkpoint", "down", "restart"])),
                 min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(spans, st.integers(1, 50))
def test_binned_power_keeps_the_energy(parts, bins):
    """The downsampled curve holds the same energy as the timeline it averages."""
    levels = {"up": 1000.0, "checkpoint": 600.0, "down": 100.0, "restart": 150.0}
    t, timeline = 0.0, []
    for length, state in parts:
        timeline.append((t, t + length, state))
        t += length
    centres, watts = binned_power(timeline, levels, bins)
    exact = sum((b - a) * levels[s] for a, b, s in timeline)
    assert len(watts) == bins
    assert np.isclose(watts.sum() * t / bins, exact, rtol=1e-9)
    assert watts.min() >= 100.0 - 1e-9 and watts.max() <= 1000.0 + 1e-9
