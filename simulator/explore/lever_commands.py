"""CLI commands for cost levers: levers, plan (issue 9). Parsing and printing only; the logic is in
explore/levers.py, explore/plan.py and model/scaling.py."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator import units
from simulator.argtypes import non_negative_int as _non_negative_int
from simulator.argtypes import positive_int as _positive_int
from simulator.argtypes import replica_count as _replica_count
from simulator.errors import ConfigError


def _count(text: str) -> float:
    """'3.8e25', '8B', '15T' -> float (a ConfigError, exit 2, otherwise)."""
    try:
        return units.parse(text, "count")
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"expected a number such as 3.8e25 or 8B, got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _common(p: argparse.ArgumentParser, replicas: int) -> None:
    p.add_argument("--cluster", help="cluster YAML file (default: the workload's `cluster:`)")
    p.add_argument("--gpus", type=_positive_int, help="number of GPUs (overrides num_gpus)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a workload or cluster key of the baseline (repeatable)")
    p.add_argument("--replicas", type=_replica_count, default=replicas,
                   help=f"Monte Carlo replicas of each training campaign (default {replicas})")
    p.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seed of the campaign's random streams (default 0)")
    p.add_argument("--fast", action="store_true", help="closed-form step time instead of the step DES")
    p.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    p.add_argument("--calibration", metavar="FILE", help="efficiencies and error band from `trainsim calibrate` (docs/calibration.md); "
                        "wins over the cluster's `calibration:` key")


def _optimizer_preset(text: str) -> str:
    """argparse type: an optimizer preset name (the presets are imported only when one is given)."""
    from simulator.model.optimizers import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(sorted(PRESETS))}, got {text!r}")
    return text


def register(sub) -> None:
    """Add `levers` and `plan` to the `trainsim` parser."""
    from simulator.explore.lever_names import ALL_LEVERS, PRUNE_WIDTH, RETRAIN_FRACTION

    lv = sub.add_parser("levers", help="price cost levers (optimizer, FP8, 2:4 sparsity, compute-optimal "
                                       "size, pruning) against a workload's baseline")
    lv.add_argument("workload", help="workload YAML file (the baseline)")
    _common(lv, replicas=32)
    lv.add_argument("--optimizer", type=_optimizer_preset, default=None, metavar="PRESET",
                    help="optimizer preset of the optimizer lever (default sophia)")
    lv.add_argument("--only", metavar="LEVER,...", help=f"levers to price (default all: {','.join(ALL_LEVERS)})")
    lv.add_argument("--prune-width", type=_fraction, default=None,
                    help=f"pruned model's fraction of the hidden and MLP channels; heads and KV groups are kept, "
                         f"as Minitron-Width (default {PRUNE_WIDTH})")
    lv.add_argument("--prune-depth", type=_fraction, default=1.0,
                    help="pruned model's fraction of layers (default 1)")
    lv.add_argument("--retrain-fraction", type=_fraction, default=RETRAIN_FRACTION,
                    help=f"pruned model's retraining tokens / baseline tokens (default {RETRAIN_FRACTION:g}, Minitron)")
    lv.add_argument("--no-distill", action="store_true", help="retrain the pruned model without a teacher")
    lv.add_argument("--plot", metavar="FILE", help="write a chart of the levers (PNG)")
    lv.add_argument("--report", metavar="FILE.html",
                    help="write a self-contained HTML report (chart, table, inputs, assumptions, validation band)")
    lv.add_argument("--force", action="store_true", help="overwrite existing --plot / --report files")
    lv.set_defaults(func=cmd_levers)

    pl = sub.add_parser("plan", help="model size and tokens from the Chinchilla fit, priced against a workload")
    pl.add_argument("--compute-budget", type=_count, metavar="FLOPS", help="training compute, e.g. 3.8e25")
    pl.add_argument("--target-loss", type=float, metavar="L", help="predicted final loss (nats/token)")
    pl.add_argument("--params", type=_count, metavar="N", help="use this model size instead of the "
                                                                "compute-optimal one, e.g. 8B")
    pl.add_argument("--workload", help="price the proposal against this workload (without a budget or "
                                       "target: the workload's own predicted loss)")
    _common(pl, replicas=32)
    pl.set_defaults(func=cmd_plan)


def _levers(text: str | None) -> tuple[str, ...]:
    from simulator.explore.lever_names import ALL_LEVERS

    if text is None:
        return ALL_LEVERS
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in ALL_LEVERS]
    if bad or not names:
        raise ConfigError("unknown lever", source="--only", value=",".join(bad) or text,
                          expected="a comma-separated list of " + ", ".join(ALL_LEVERS))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError("a lever named twice", source="--only", value=",".join(twice),
                          expected="each lever once")
    return names


def cmd_levers(args: argparse.Namespace) -> int:
    from simulator.calibration.file import describe
    from simulator.explore.handlers import check_outputs, finite
    from simulator.explore.lever_names import PRUNE_WIDTH
    from simulator.explore.levers import LeverOptions, evaluate_with
    from simulator.report.lever_table import format_table

    check_outputs(args)   # --plot, --report: writable, not the same file
    opts = LeverOptions(optimizer=args.optimizer or "sophia",
                        prune_width=PRUNE_WIDTH if args.prune_width is None else args.prune_width,
                        prune_depth=args.prune_depth, retrain_fraction=args.retrain_fraction,
                        distill=not args.no_distill, levers=_levers(args.only),
                        given=("--prune-width",) if args.prune_width is not None else ())
    rows, applied = evaluate_with(Path(args.workload), cluster=Path(args.cluster) if args.cluster else None, gpus=args.gpus,
                    overrides=args.overrides, opts=opts, engine="analytical" if args.fast else "des",
                    replicas=args.replicas, seed=args.seed, calibration=args.calibration)
    data = [r.to_json() for r in rows]
    text = format_table(data) + f"\ncalibration: {describe(applied)}"
    if args.plot or args.report:
        from simulator.report.lever_plots import levers_figure
        from simulator.report.style import save

        fig = levers_figure(data, title=f"({Path(args.workload).stem})")
        if args.plot:
            save(fig, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        if args.report:
            _lever_report(args, data, fig, text)
    if args.json:
        print(json.dumps(finite({"workload": args.workload, "calibration": describe(applied), "levers": data}),
                         indent=2, default=str))
    else:
        print(text)
    return 0


def _lever_report(args, data: list[dict], fig, text: str) -> None:
    from simulator.config.scenario import load_scenario
    from simulator.report import html
    from simulator.report.pages import study_page

    base = load_scenario(args.workload, cluster=args.cluster, overrides=args.overrides, gpus=args.gpus)
    rows = [{"case": d["label"], "status": "n/a: " + d["error"] if d["error"] else "ok", **d["metrics"]}
            for d in data]
    page = study_page("levers", "Which cost levers save the most time, energy and money?", base.name, rows, text,
                      fig, "Each lever's days, GPU-hours, energy, emissions and cost over the baseline's.",
                      args.fast, args.replicas, base, (args.workload, base.cluster_source))
    print(f"wrote {html.write(page, args.report, args.force)}", file=sys.stderr)


def _check_size(prop, q) -> None:
    """A proposal beyond any trainable model (limits.MAX_MODEL_PARAMS) or below the smallest one worth
    pricing (limits.MIN_MODEL_PARAMS) is refused, naming the flag that asked for it, before the
    family search is asked to build it."""
    from simulator.limits import MAX_MODEL_PARAMS, MAX_TRAIN_TOKENS, MIN_MODEL_PARAMS, MIN_TRAIN_TOKENS

    big = prop.params > MAX_MODEL_PARAMS or prop.tokens > MAX_TRAIN_TOKENS
    small = prop.params < MIN_MODEL_PARAMS or prop.tokens < MIN_TRAIN_TOKENS
    if not (big or small):
        return
    flag, value = _question_flag(q)
    raise ConfigError(f"the proposal has {prop.params:.3g} parameters on {prop.tokens:.3g} tokens, "
                      + ("beyond any trainable model" if big else "below any model worth pricing"),
                      source=flag, value=value,
                      expected=f"a question whose model has {MIN_MODEL_PARAMS:.0e} to {MAX_MODEL_PARAMS:.0e} "
                      f"parameters and {MIN_TRAIN_TOKENS:.0e} to {MAX_TRAIN_TOKENS:.0e} tokens")


def _question_flag(q) -> tuple[str, object]:
    return (("--params", q.params) if q.params is not None else
            ("--compute-budget", q.compute_budget) if q.compute_budget is not None else
            ("--target-loss", q.target_loss))


def cmd_plan(args: argparse.Namespace) -> int:
    from simulator.config.scenario import load_scenario
    from simulator.explore.levers import Lever, calibrated, run_lever, row_metrics
    from simulator.explore.plan import PlanQuestion, check, plan_lever, proposal_json, propose, workload_point
    from simulator.model.scaling import CHINCHILLA
    from simulator.simulate import simulate

    q = PlanQuestion(args.compute_budget, args.target_loss, args.params)
    check(q, args.workload is not None)
    if args.workload is None:   # the baseline's options mean nothing without a baseline
        for flag, given in (("--set", args.overrides), ("--cluster", args.cluster), ("--gpus", args.gpus),
                            ("--calibration", args.calibration)):
            if given:
                raise ConfigError(f"{flag} applies to the workload the proposal is priced against",
                                  source=flag, value=given if not isinstance(given, list) else given[0],
                                  expected=f"--workload FILE with it, or no {flag}")
    out: dict = {"fit": {k: getattr(CHINCHILLA, k) for k in ("E", "A", "B", "alpha", "beta", "source")}}
    lines = [f"Chinchilla fit ({CHINCHILLA.source}): L(N, D) = {CHINCHILLA.E} + {CHINCHILLA.A} / N^{CHINCHILLA.alpha}"
             f" + {CHINCHILLA.B} / D^{CHINCHILLA.beta}, C = 6 N D"]
    base = point = None
    if args.workload:
        cluster = Path(args.cluster) if args.cluster else None
        base = load_scenario(args.workload, cluster=cluster, overrides=args.overrides, gpus=args.gpus)
        point = workload_point(base)
        out["workload"] = proposal_json(point)
        lines.append(f"workload  {_point(point)}")
    try:
        prop = propose(q, point)
    except (ValueError, OverflowError, ZeroDivisionError) as exc:   # a question the fit's arithmetic cannot answer
        flag, value = _question_flag(q)
        raise ConfigError(f"the fit cannot answer it ({exc})", source=flag, value=value,
                          expected="a compute budget, target loss or size within the fit's reach") from None
    _check_size(prop, q)
    out["proposal"] = proposal_json(prop)
    lines.append(f"proposal  {_point(prop)}")
    if base is not None:
        from simulator.report.lever_table import format_table

        from simulator.calibration.file import describe

        sim = dict(engine="analytical" if args.fast else "des", replicas=args.replicas, seed=args.seed)
        applied, band = calibrated(args.calibration, base, sim)   # as levers: its efficiencies and band
        baseline = {"key": "baseline", "label": f"{base.name} (baseline)", "note": "", "error": "",
                    "overrides": [], "metrics": row_metrics(simulate(base, **sim), band)}
        lever = plan_lever(base, prop, q)
        row = run_lever(Lever("plan", "proposal", lever.overrides, True, lever.note), base, Path(args.workload),
                        cluster, args.gpus, list(args.overrides), band, **sim).to_json()
        out["rows"] = [baseline, row]
        out["calibration"] = describe(applied)
        lines += ["", format_table([baseline, row]), f"calibration: {describe(applied)}"]
    from simulator.model.scaling import extrapolated

    points = [x for x in (point, prop) if x is not None]
    out["extrapolated"] = any(extrapolated(x.params, x.tokens) for x in points)
    if out["extrapolated"]:
        lines.append("note: outside the fit's runs (70M-16B parameters, 5B-500B tokens): an extrapolation; "
                     "losses are MassiveText nats/token (docs/levers.md)")
    if args.json:
        from simulator.explore.handlers import finite

        print(json.dumps(finite(out), indent=2, default=str))
    else:
        print("\n".join(lines))
    return 0


def _point(p) -> str:
    return (f"N {units.fmt_si(p.params, billion='B')} parameters, D {units.fmt_si(p.tokens, billion='B')} tokens "
            f"({p.tokens_per_param:.0f} tokens/param), C {p.compute:.3g} FLOPs, predicted loss {p.loss:.3f}")
