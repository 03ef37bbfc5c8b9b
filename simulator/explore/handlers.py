"""The functions behind `trainsim compare | sweep | search | size | sensitivity` (see commands.py)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from simulator import units
from simulator.errors import ConfigError, InfeasibleError
from simulator.explore.cases import SimOptions, Study, read_inputs
from simulator.explore.confidences import days_key
from simulator.explore.executors import executor_for
from simulator.explore.layouts import RECOMPUTE, Space


def emit(args, data, text: str) -> int:
    """Print JSON (``--json``; NaN and infinities as null, so any parser reads it) or the text
    report on stdout; exit code 0."""
    print(json.dumps(finite(data), indent=2, default=str) if args.json else text)
    return 0


def study_exit(rows: list[dict]) -> int:
    """A study's exit code once its report is out: 0 when a case ran; else 3 when some case did not
    fit (infeasible), 2 when every case was invalid (docs/explore.md), 1 when a case failed
    otherwise (an internal error), with a note naming why."""
    if any(r.get("status") == "ok" for r in rows):
        return 0
    statuses = sorted({str(r.get("status")) for r in rows})
    first = next((r for r in rows if r.get("error")), None)
    why = f"; first: {first['error']}" if first else ""
    note(f"no case ran (status: {', '.join(statuses) or 'no cases'}){why}")
    if "infeasible" in statuses:
        return 3
    return 2 if statuses == ["invalid"] else 1   # a case that failed otherwise is a bug (exit 1)


def finite(value):
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def note(message: str) -> None:
    print(message, file=sys.stderr)


def check_output(path: str | Path, option: str, force: bool = False, overwrite_ok: bool = False) -> None:
    """Before any work: ``path`` must be a file name whose folder exists or can be created, and an
    existing file is only replaced with --force (simulator.outputs, the one checked writer)."""
    from simulator.outputs import check_output as checked

    checked(path, option, force=force, overwrite_ok=overwrite_ok)


def check_plot(path: str | Path | None, option: str = "--plot", force: bool = False) -> None:
    """Before any work: a chart path with a format matplotlib writes, in a folder that can be made."""
    if path is None:
        return
    from simulator.report.study_plots import plot_formats

    formats = plot_formats()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ConfigError("unknown chart format" if suffix else "the file name has no format suffix",
                          source=option, value=str(path),
                          expected="a file ending in " + ", ".join(f".{f}" for f in formats))
    check_output(path, option, force)


def check_outputs(args) -> None:
    """Before any work: the --plot chart path and the --report page path (never overwritten
    without --force)."""
    from simulator.outputs import check_distinct
    from simulator.report.html import check_report_path

    check_plot(args.plot, force=getattr(args, "force", False))
    check_report_path(getattr(args, "report", None), getattr(args, "force", False))
    out = getattr(args, "out", None)
    check_distinct(("--plot", args.plot), ("--report", getattr(args, "report", None)),
                   ("--out", out), ("--out", f"{out}.study.json" if out else None),
                   ("--write", getattr(args, "write", None)))


def charts(args, make_figure, kind: str, question: str, name: str, rows, text: str, caption: str,
           scenario=None, inputs=(), answer: str = "") -> None:
    """Build the study's chart once, then write it to --plot and/or into the --report page."""
    if not (args.plot or getattr(args, "report", None)):
        return
    from simulator.report.style import save

    fig = make_figure()
    if args.plot:
        _plotted(save(fig, args.plot))
    if getattr(args, "report", None):
        from simulator.report import html
        from simulator.report.pages import study_page

        sources = [x for i in inputs for x in (i.workload_source, i.cluster_source)]
        page = study_page(kind, question, name, rows, text, fig, caption, args.fast, args.replicas, scenario,
                          sources, answer)
        note(f"wrote {html.write(page, args.report, args.force)}")


def options(args) -> SimOptions:
    from simulator.calibration.file import from_option

    return SimOptions(engine="analytical" if args.fast else "des", replicas=args.replicas, seed=args.seed,
                      calibration=from_option(getattr(args, "calibration", None)))


def _executor(args):
    return executor_for(args.workers, args.scheduler)


def _plotted(path) -> None:
    note(f"wrote {path}")


def compare(args) -> int:
    from simulator.explore.compare import compare_cases
    from simulator.explore.sweep import run_cases
    from simulator.report.study_plots import compare_figure
    from simulator.report.study_tables import compare_text

    check_outputs(args)
    opts = options(args)
    inputs, cases = compare_cases(args.workloads, args.vary, args.cluster, args.overrides, args.gpus, opts.calibration)
    with _executor(args) as ex:
        rows = run_cases(Study(inputs, opts), cases, ex, progress=not args.no_progress)
    text = compare_text(rows)
    charts(args, lambda: compare_figure(rows), "compare", "How do these cases compare in time, energy and cost?",
           ", ".join(Path(w).stem for w in args.workloads), rows, text,
           "Each metric per case, with its change from the first case; days with the P10-P90 range.",
           _base_scenario(args.workloads[0], args), inputs)
    emit(args, rows, text)
    return study_exit(rows)


def _base_scenario(workload, args):
    """The first workload's scenario, for the assumptions it fills in (None when it does not load alone)."""
    from simulator.config.scenario import load_scenario

    try:
        return load_scenario(workload, cluster=args.cluster, overrides=args.overrides, gpus=getattr(args, "gpus", None))
    except (ConfigError, InfeasibleError):
        return None


def sweep(args) -> int:
    from simulator.explore.sweep import axis_cases, run_cases
    from simulator.explore.values import parse_axis
    from simulator.report.study_tables import sweep_text

    check_outputs(args)
    if args.out:
        check_output(args.out, "--out", overwrite_ok=args.force or args.resume)
    inp, s = read_inputs(args.workload, args.cluster, args.overrides, args.gpus)
    axes = [parse_axis(g, "--grid") for g in args.grid]
    opts = options(args)
    inputs, cases = axis_cases(axes, s, inp, tuple(args.overrides), args.gpus, option="--grid",
                               calibration=opts.calibration)
    if args.resume and not args.out:
        raise ConfigError("--resume needs the results file", source="--resume", expected="--out FILE")
    if args.out and args.force and Path(args.out).exists() and not args.resume:
        Path(args.out).unlink()
    meta = {"workload": str(Path(args.workload).resolve()), "cluster": str(Path(s.cluster_source).resolve()),
            "set": list(args.overrides), "gpus": args.gpus, "grid": [[a.key, list(a.values)] for a in axes]}
    try:
        with _executor(args) as ex:
            rows = run_cases(Study(inputs, opts), cases, ex, out=args.out, resume=args.resume,
                             progress=not args.no_progress, meta=meta)
    except KeyboardInterrupt:
        if args.out:
            note(f"the rows finished so far are in {args.out}; continue with the same command and --resume")
        raise
    if args.out:
        note(f"wrote {len(rows)} rows to {args.out}")
    from simulator.report.study_plots import sweep_figure

    text = sweep_text(rows)
    charts(args, lambda: sweep_figure(rows, [a.key for a in axes], f"({s.name})"), "sweep",
           "How do time and cost change across the grid?", s.name, rows, text,
           "Days to train and campaign cost against the first grid axis, one line per value of the others.",
           s, inputs)
    emit(args, rows, text)
    return study_exit(rows)


def _ints(text: str | None, flag: str, least: int = 1) -> tuple[int, ...] | None:
    """A comma-separated list of integers >= ``least`` (sizes and counts: positive)."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError("expected comma-separated integers", source=flag, value=text, expected="e.g. 1,2,4,8") from None
    from simulator.limits import MAX_INT

    if any(v < least or v > MAX_INT for v in values):
        what = "positive integers" if least == 1 else f"integers >= {least}"
        raise ConfigError(f"expected {what} up to {MAX_INT:,}", source=flag, value=text,
                          expected=f"each value from {least} to {MAX_INT:,}" + (", e.g. 1,2,4,8" if least == 1 else ""))
    return values


def _space(args, scenario) -> Space:
    rec = tuple(r.strip() for r in args.recompute.split(",")) if args.recompute is not None else RECOMPUTE
    bad = [r for r in rec if r not in RECOMPUTE]
    if bad:
        raise ConfigError("unknown recomputation", source="--recompute", value=",".join(bad) or repr(args.recompute),
                          expected=", ".join(RECOMPUTE))
    zero = _ints(args.zero, "--zero", least=0) or (0, 1, 2, 3)
    if any(z > 3 for z in zero):
        raise ConfigError("ZeRO stages are 0-3", source="--zero", value=args.zero)
    return Space(tp=_ints(args.tp, "--tp"), pp=_ints(args.pp, "--pp"), vpp=_ints(args.vpp, "--vpp"),
                 cp=_ints(args.cp, "--cp"), ep=_ints(args.ep, "--ep"),
                 micro_batch=_ints(args.micro_batch, "--micro-batch"),
                 zero=tuple(sorted(set(zero))), recompute=tuple(r for r in RECOMPUTE if r in rec),
                 schedule=kept_schedule(scenario))


def kept_schedule(scenario) -> str | None:
    """The workload's pipeline schedule when it is not the interleaved one (which VPP implies)."""
    schedule = scenario.workload.parallelism.pipeline_schedule
    return None if schedule == "interleaved_1f1b" else schedule


def _search_inputs(args):
    """(Inputs, Scenario, GPU count) of a workload whose layout the search will replace. When the
    workload's own layout does not validate, it is read on one GPU with a trivial layout instead, its
    training phases left out (they keep GPU counts of their own, which a trivial layout need not
    divide; the search checks them against each ranked layout, search.schedule_fits)."""
    from simulator.explore.ranking import RESET

    try:
        inp, s = read_inputs(args.workload, args.cluster, args.overrides, args.gpus)
        return inp, s, s.num_gpus
    except ConfigError as exc:
        from simulator.config.overrides import apply, parse_override

        inp, s = read_inputs(args.workload, args.cluster, list(args.overrides) + list(RESET) + ["phases=null"], 1)
        workload_sets = [o for o in map(parse_override, args.overrides)
                         if not (o.path[0] == "cluster" and len(o.path) > 1)]
        gpus = args.gpus or apply(inp.wraw, workload_sets, inp.workload_source).get("num_gpus")
        if not isinstance(gpus, int):
            raise exc
        return inp, s, gpus


def search(args) -> int:
    from simulator.explore.search import SearchSettings, search as run_search
    from simulator.report.study_text import search_text

    check_outputs(args)
    if args.write:
        check_output(args.write, "--write", args.force)
    inp, s, gpus = _search_inputs(args)
    settings = SearchSettings(gpus=gpus, objective=args.objective, confidence=args.confidence, top=args.top,
                              space=_space(args, s))
    with _executor(args) as ex:
        res = run_search(inp, tuple(args.overrides), settings, ex, options(args), progress=not args.no_progress)
    if args.write and res.best_layout is not None:
        from simulator.explore.best import write_layout_yaml
        write_layout_yaml(inp, args.overrides, res.best_layout, gpus, args.write,
                          note=f"objective {args.objective}; `trainsim search` re-simulated it with the "
                               f"{options(args).engine} engine")
        note(f"wrote {args.write} (run it with: trainsim run {args.write})")
    engine = f"{options(args).engine} step + campaign, {args.replicas} replicas"
    text = search_text(res, s.name, days_key(args.confidence), engine)

    def figure():
        from simulator.report.study_plots import pareto_figure
        cf = [(r.step_time_s, r.step_energy_j) for r in res.ranked if r.step_energy_j is not None]
        short = [(r.step_time_s, r.step_energy_j) for r in res.shortlist if r.step_energy_j is not None]
        return pareto_figure(res.rows, res.front, res.best, cf, f"({s.name} on {gpus:,} GPUs)",
                             days_key(args.confidence), short)

    best = res.rows[res.best] if res.best is not None else None
    answer = (f"best by {args.objective}: {best.get('layout')}" if best else "none of the re-simulated layouts ran")
    charts(args, figure, "search", f"Which parallel layout is best on {gpus:,} GPUs (objective: {args.objective})?",
           s.name, [{**row, "case": r.layout.describe()} for r, row in zip(res.shortlist, res.rows)], text,
           "Left: every layout that fits, closed form. Right: the re-simulated ones, days against cost.",
           s, (inp,), answer)
    return emit(args, search_json(res, s.name), text)


def _ranked_json(r) -> dict:
    return {"layout": r.layout.describe(), "step_time_s": r.step_time_s, "memory_gib": r.memory_gib,
            "step_energy_j": r.step_energy_j, "bubble_s": r.bubble_s, "exposed_comm_s": r.exposed_comm_s,
            "overrides": list(r.layout.overrides())}


def search_json(res, name: str) -> dict:
    st = res.settings
    cands = [{**row, "closed_form": _ranked_json(r), "best": i == res.best, "pareto": i in res.front}
             for i, (r, row) in enumerate(zip(res.shortlist, res.rows))]
    return {"workload": name, "gpus": st.gpus, "objective": st.objective, "confidence": st.confidence,
            "shapes": res.shapes, "layouts": res.layouts, "fitting": len(res.ranked), "pruned": res.pruned,
            "closed_form_top": [_ranked_json(r) for r in res.leaders], "candidates": cands,
            "best": cands[res.best] if res.best is not None else None,
            "front": [cands[i]["case"] for i in res.front]}


def _quantity(text: str | None, kind: str, flag: str, bare: float, example: str) -> float | None:
    """A --deadline / --budget value in SI, finite and positive; a bare number is in days / USD
    (``bare`` SI per unit)."""
    if text is None:
        return None
    try:
        value = float(text) * bare
    except ValueError:
        try:
            value = units.parse(text, kind)
        except ValueError as exc:
            raise ConfigError(str(exc), source=flag, value=text, expected=example) from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError("must be a finite, positive amount", source=flag, value=text, expected=example)
    return value


def size(args) -> int:
    from simulator.explore.size import SizeSettings, size as run_size
    from simulator.report.study_text import size_text

    check_outputs(args)
    deadline = _quantity(args.deadline, "time", "--deadline", 86400.0, "a duration > 0, e.g. 60d or '8 weeks'")
    budget = _quantity(args.budget, "money", "--budget", 1.0, "an amount > 0, e.g. '$40M' or '4e7 USD'")
    inp, s = read_inputs(args.workload, args.cluster, args.overrides)
    st = SizeSettings(deadline_days=None if deadline is None else deadline / 86400.0, budget_usd=budget,
                      confidence=args.confidence, max_gpus=args.max_gpus, counts=_ints(args.counts, "--counts"),
                      search=args.search, space=Space(schedule=kept_schedule(s)))
    with _executor(args) as ex:
        res = run_size(inp, s, tuple(args.overrides), st, ex, options(args), progress=not args.no_progress)
    key = days_key(args.confidence)
    text = size_text(res, s.name, key)
    from simulator.report.study_plots import size_figure

    shown = [{**r, "case": f"{r['num_gpus']:,} GPUs"} for r in res.rows if r.get("status") != "not simulated"
             or r.get("closed_form_days") is not None]
    charts(args, lambda: size_figure(res.rows, st.deadline_days, budget, res.answer, key, f"({s.name})"), "size",
           "How many GPUs meet the deadline (or the budget)?", s.name, shown, text,
           "Days to train and cost against the GPU count; failure-free closed form as a lower bound.", s, (inp,),
           text.rsplit("answer: ", 1)[-1].splitlines()[0] if res.answer is not None else "no count meets the goal")
    data = {"workload": s.name, "deadline_days": st.deadline_days, "budget_usd": budget,
            "confidence": args.confidence, "answer": res.rows[res.answer] if res.answer is not None else None,
            "closest": res.rows[res.closest] if res.closest is not None else None,
            "rows": res.rows}
    rc = emit(args, data, text)
    if rc == 0 and res.answer is None:
        from simulator.explore.size import NO_ANSWER_EXIT
        return NO_ANSWER_EXIT
    return rc


def sensitivity(args) -> int:
    from simulator.explore.sensitivity import factors, sensitivity as run_sensitivity
    from simulator.report.study_text import delta, sensitivity_text

    check_outputs(args)
    inp, s = read_inputs(args.workload, args.cluster, args.overrides, args.gpus)
    names = None if args.inputs is None else [n.strip() for n in args.inputs.split(",") if n.strip()]
    if names == []:   # `--inputs ''` is not "all": leave the option out for that
        raise ConfigError("names no input", source="--inputs", value=args.inputs,
                          expected="a comma-separated list, e.g. nic,gemm (or leave --inputs out for all)")
    chosen = factors(names, args.add)
    with _executor(args) as ex:
        res = run_sensitivity(inp, s, tuple(args.overrides), args.percent, chosen, ex, options(args),
                              args.confidence, progress=not args.no_progress)
    key = days_key(args.confidence)
    d_time = [(delta(res.base, sw.low, key), delta(res.base, sw.high, key)) for sw in res.swings]
    d_cost = [(delta(res.base, sw.low, "cost_usd"), delta(res.base, sw.high, "cost_usd")) for sw in res.swings]
    from simulator.report.study_plots import tornado_figure

    text = sensitivity_text(res, s.name, key)
    rows = [{**row, "case": f"{sw.factor.label} {side}{args.percent:g}%"} for sw in res.swings
            for side, row in (("-", sw.low), ("+", sw.high))]
    charts(args, lambda: tornado_figure([sw.factor.label for sw in res.swings], d_time, d_cost, args.percent,
                                        f"({s.name}, ±{args.percent:g}%)"),
           "sensitivity", f"Which inputs move time and cost the most when each is off by {args.percent:g}%?",
           s.name, [{**res.base, "case": "base"}] + rows, text,
           "Change in days to train and in cost when each input is lowered (solid) or raised (hatched).", s, (inp,))
    data = {"workload": s.name, "percent": args.percent, "confidence": args.confidence, "base": res.base,
            "inputs": [{"name": sw.factor.name, "label": sw.factor.label, "keys": list(sw.factor.keys),
                        "low_value": sw.low_value, "high_value": sw.high_value,
                        "time_delta_days": list(dt), "cost_delta_usd": list(dc), "low": sw.low, "high": sw.high}
                       for sw, dt, dc in zip(res.swings, d_time, d_cost)]}
    return emit(args, data, text)
