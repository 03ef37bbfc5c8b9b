"""Text reports of `trainsim search`, `size` and `sensitivity` (tables from report/study_tables.py)."""
from __future__ import annotations

from simulator.report.study_tables import (
    BAND_NOTE, DASH, big, calibration_note, days_band, fmt, money, money_band, num, step_band, table,
)
from simulator.units import fmt_si
from simulator.errors import clip


def _pct(part, whole) -> str:
    p, w = num(part), num(whole)
    return DASH if p is None or not w else f"{p / w:.1%}"


def _comm(row: dict) -> float:
    """Exposed communication per step: TP, CP, EP, PP and DP."""
    return sum(num(row.get(f"breakdown_{k}_s")) or 0.0 for k in ("tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm"))


def _pruned_lines(res) -> list[str]:
    p = getattr(res, "pruned", None) or {}
    out = []
    if p.get("memory"):
        out.append(f"pruned: {p['memory']:,} shapes do not fit in memory even with ZeRO-3 and the heaviest "
                   f"recomputation (the closest needs {p['closest_memory_gib']:.1f} GiB)")
    if p.get("layout_checks"):
        out.append(f"pruned: {p['layout_checks']:,} shapes refused by the layout checks "
                   f"(first: {p['first_layout_refusal']})")
    return out


def search_text(res, name: str, days_key: str, engine_note: str) -> str:
    st = res.settings
    lines = [f"search: {name} on {st.gpus} GPUs, objective {st.objective}"
             + (f" ({st.confidence})" if st.objective == "time" else ""),
             f"{res.shapes:,} layout shapes divide; {res.layouts:,} layouts with ZeRO stage x recomputation; "
             f"{len(res.ranked):,} fit in memory and were timed with the closed form "
             "(heavier recomputation than needed to fit is pruned)", *_pruned_lines(res), "",
             "best by the closed form (layouts it cannot tell apart shown once):"]
    body = [[str(i + 1), r.layout.describe(), f"{r.step_time_s:.3g} s", f"{r.memory_gib:.1f}",
             _pct(r.bubble_s, r.step_time_s), _pct(r.exposed_comm_s, r.step_time_s)]
            for i, r in enumerate(res.leaders)]
    lines += [table(("#", "layout", "step", "GiB/GPU", "bubble", "exposed comm"), body, left=2), ""]
    lines.append(f"re-simulated ({engine_note}); * best, F on the Pareto front of time vs cost vs energy:")
    body = []
    for i, (r, row) in enumerate(zip(res.shortlist, res.rows)):
        mark = ("*" if i == res.best else "") + ("F" if i in res.front else "")
        if row.get("status") != "ok":
            body.append([mark, r.layout.describe(), row.get("status", "")] + [""] * 12)
            continue
        step = row.get("step_time_s")
        body.append([mark, r.layout.describe(), fmt(step, "{:.3g} s"), step_band(row), fmt(row.get("mfu"), "{:.1%}"),
                     fmt(row.get("memory_per_gpu_gib"), "{:.1f}"), _pct(row.get("breakdown_bubble_s"), step),
                     _pct(_comm(row), step), fmt(row.get(days_key), "{:.1f}"), days_band(row),
                     DASH if num(row.get("gpu_hours")) is None else fmt_si(num(row["gpu_hours"])),
                     big(row.get("energy_mwh")), big(row.get("co2_tonnes")), money(row.get("cost_usd")),
                     money_band(row)])
    lines.append(table(("", "layout", "step", "step P10–P90 s", "MFU", "GiB/GPU", "bubble", "comm", "days",
                        "d P10–P90", "GPU-h", "MWh", "tCO2e", "$", "$ P10–P90"), body, left=2))
    lines.append(BAND_NOTE + calibration_note(res.rows))
    if res.front:
        lines.append("Pareto front (time vs cost vs energy): "
                     + "; ".join(res.shortlist[i].layout.describe() for i in res.front))
    if res.best is not None:
        row, r = res.rows[res.best], res.shortlist[res.best]
        step = num(row.get("step_time_s"))
        why = [f"memory {fmt(row.get('memory_per_gpu_gib'), '{:.1f}')} of {fmt(row.get('memory_capacity_gib'), '{:.0f}')} GiB"
               if row.get("memory_capacity_gib") else f"memory {fmt(row.get('memory_per_gpu_gib'), '{:.1f}')} GiB",
               f"bubble {_pct(row.get('breakdown_bubble_s'), step)}",
               "exposed comm " + _pct(_comm(row), step)]
        lines += ["", f"best: {r.layout.describe()}  ({', '.join(why)})"]
    else:
        lines += ["", "best: none of the re-simulated layouts ran (see their status)"]
        first = next((row for row in res.rows if row.get("error")), None)
        if first is not None:
            lines.append(f"first reason ({first.get('status')}): {first['error']}")
    return "\n".join(lines)


def size_text(res, name: str, days_key: str) -> str:
    st = res.settings
    goal = []
    if st.deadline_days is not None:
        goal.append(f"deadline {st.deadline_days:g} d at {st.confidence}")
    if st.budget_usd is not None:
        goal.append(f"budget ${fmt_si(st.budget_usd)}")
    lines = [f"size: {name}, {' and '.join(goal)}" + (" (layout re-searched per count)" if st.search else "")]
    body, hidden = [], 0
    for i, r in enumerate(res.rows):
        if r.get("closed_form_days") is None and r.get("status") == "not simulated":
            hidden += 1
            continue
        body.append(["*" if i == res.answer else "", f"{r['num_gpus']:,}", str(r.get("layout") or DASH),
                     fmt(r.get("closed_form_days"), "{:.1f}"), str(r.get("status")),
                     fmt(r.get(days_key), "{:.1f}"), days_band(r), fmt(r.get("ettr"), "{:.3f}"),
                     money(r.get("cost_usd")), money_band(r), big(r.get("energy_mwh"))])
    lines.append(table(("", "GPUs", "layout", "ideal d", "status", f"{st.confidence} d", "d P10–P90", "ETTR", "$",
                        "$ P10–P90", "MWh"), body, left=3))
    misfits = [r for r in res.rows if r.get("status") == "does not fit" and r.get("error")]
    if misfits:
        more = len(misfits) - 1
        lines.append(f"does not fit: at {misfits[0]['num_gpus']:,} GPUs {misfits[0]['error']}"
                     + (f"; {more} more count{'s' if more > 1 else ''} the same way" if more else ""))
    at = (f"{st.confidence}" if st.confidence.startswith("band-")
          else f"{st.confidence} of failures")   # the band's own P10-P90 (model error too) shown beside it
    if res.answer is None:
        later = "a later deadline" if res.settings.deadline_days is not None else ""
        more = "a larger budget" if res.settings.budget_usd is not None else ""
        goal = " or ".join(x for x in (later, more) if x)
        lines += ["", f"no candidate count meets the goal (see the table; try --max-gpus, --search or {goal})"]
        c = res.rows[res.closest] if getattr(res, "closest", None) is not None else None
        if c is not None:
            if c.get("status") == "ok":
                lines.append(f"closest: {c['num_gpus']:,} GPUs ({c.get('layout')}): {fmt(c.get(days_key), '{:.1f}')} "
                             f"days at {at}{_with_band(c)}, {money(c.get('cost_usd'))}"
                             + (f" ({c['time_to_train_reason']})" if c.get("time_to_train_reason") else ""))
            else:
                lines.append(f"closest: {c['num_gpus']:,} GPUs ({c.get('layout')}): at least "
                             f"{fmt(c.get('closed_form_days'), '{:.1f}')} days failure-free (not simulated)")
    else:
        r = res.rows[res.answer]
        lines += ["", f"answer: {r['num_gpus']:,} GPUs ({r.get('layout')}): {fmt(r.get(days_key), '{:.1f}')} days at "
                  f"{at}{_with_band(r)}, {money(r.get('cost_usd'))}, {big(r.get('energy_mwh'))} MWh"]
    lines.append("ideal d: closed-form failure-free days (a lower bound); counts it rules out are not simulated")
    within = ("the prediction band's" if st.confidence.startswith("band-") else
              "the failure simulation's spread around the central step time (--confidence band-p90 adds the "
              "model's own error)")
    lines.append(BAND_NOTE + f"; the answer meets the goal at {st.confidence}: {within}" + calibration_note(res.rows))
    if hidden:
        lines.append(f"{hidden} other count{'s have' if hidden != 1 else ' has'} no valid layout (not shown)")
    return "\n".join(lines)


def _with_band(row: dict) -> str:
    """" (with the model's error: P10-P90 a-b d)" where the row has a prediction band."""
    band = days_band(row)
    return "" if band == DASH else f" (with the model's error too: P10–P90 {band} d)"


def sensitivity_text(res, name: str, days_key: str) -> str:
    b = res.base
    lines = [f"sensitivity: {name}, each input -{res.percent:g}% / +{res.percent:g}% "
             f"(base: {fmt(b.get(days_key), '{:.2f}')} days, {money(b.get('cost_usd'))})"]
    body = []
    for sw in res.swings:
        cells = [sw.factor.label, sw.low_value, sw.high_value]
        for key in (days_key, "cost_usd"):
            for row in (sw.low, sw.high):
                d = delta(b, row, key)
                text = DASH if d is None else (f"{d:+.2f}" if key == days_key else f"{d:+,.0f}")
                cells.append("0" if text.lstrip("+-") in ("0", "0.00") else text)   # never "-0"
        body.append(cells)
    lines.append(table(("input", "low value", "high value", "days -", "days +", "$ -", "$ +"), body))
    lines.append("days -/+ and $ -/+: change from the base when the input is lowered / raised"
                 + ("; (bound): the move was cut at the input's physical bound, so it is smaller than "
                    f"{res.percent:g}%" if any("(bound)" in f"{sw.low_value}{sw.high_value}" for sw in res.swings) else "")
                 + ("; (rounded): a whole-number input moved to the nearest integer" if any(
                     "(rounded" in f"{sw.low_value}{sw.high_value}" for sw in res.swings) else ""))
    failed = [(sw.factor.label, side, row) for sw in res.swings
              for side, row in (("low", sw.low), ("high", sw.high)) if row.get("status") != "ok"]
    for label, side, row in failed:   # why a cell shows a dash
        lines.append(f"{DASH} {label} {side}: {row.get('status')}: {clip(str(row.get('error') or 'no result'), 300)}")
    return "\n".join(lines)


def delta(base: dict, row: dict, key: str) -> float | None:
    b, v = num(base.get(key)), num(row.get(key))
    return None if b is None or v is None or row.get("status") != "ok" else v - b
