"""What `trainsim validate` reports: every published row in-sample and leave-one-source-out, per
source and overall, the rows this build cannot express yet, and the whole-run figures."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.validation.fit import Held, fit_set, leave_one_source_out
from simulator.validation.runner import CHECK_ONLY_SOURCES, Row, Skipped, cases, mape, whole_run_rows


@dataclass
class Validation:
    rows: list[Row]                 # in-sample: the shipped parameters (fitted on every source's dense rows)
    held: dict[str, Row]            # run key -> the row predicted with its source left out of the fit
    refits: dict[str, Efficiency]   # source -> parameters fitted without it
    skipped: list[Skipped]
    whole: list[Row]
    fitted: int = 0                 # rows the parameters are fitted on (validation.fit.fit_set)

    def sources(self) -> list[str]:
        return list(dict.fromkeys(r.source for r in self.rows))

    def summary(self) -> list[dict]:
        def entry(name: str, keep, rows: bool = False) -> dict:
            rs = [r for r in self.rows if (keep(r) if rows else keep(r.source))]
            hs = [self.held[_key(r)] for r in rs if _key(r) in self.held]
            return {"source": name, "rows": len(rs), "in_sample_mape": mape(rs),
                    "loso_mape": mape(hs) if hs else None,
                    "not_expressible": 0 if rows else sum(1 for s in self.skipped if keep(s.source))}
        out = [entry(src, lambda x, src=src: x == src) for src in self.sources()]
        out.append(entry("all", lambda x: True))
        if any(r.source in CHECK_ONLY_SOURCES for r in self.rows):
            # the headline without the check-only sources (predicted, never fitted: runner.py)
            out.append(entry("fitted sources", lambda x: x not in CHECK_ONLY_SOURCES))
        # the fitted sources' rows by kind: dense (the fit set) and mixture-of-experts
        fitted = [r for r in self.rows if r.source not in CHECK_ONLY_SOURCES]
        if any(r.moe for r in fitted) and not all(r.moe for r in fitted):
            out.append(entry("dense rows", lambda r: r.source not in CHECK_ONLY_SOURCES and not r.moe, rows=True))
            out.append(entry("MoE rows", lambda r: r.source not in CHECK_ONLY_SOURCES and r.moe, rows=True))
        return out

    def to_json(self) -> dict:
        rows = []
        for r in self.rows:
            h = self.held.get(_key(r))
            rows.append({**r.to_json(), "loso_predicted": h.predicted if h else None,
                         "loso_error": h.error if h else None})
        return {"iteration": rows, "summary": self.summary(),
                "not_expressible": [s.to_json() for s in self.skipped],
                "loso_parameters": {src: _fitted(e) for src, e in self.refits.items()},
                "fitted_rows": self.fitted,
                "whole_runs": [r.to_json() for r in self.whole]}


def _key(r: Row) -> str:
    return f"{r.source}/{r.run}"


def _fitted(eff: Efficiency) -> dict:
    from simulator.cost.efficiency import FIT_BOUNDS

    return {n: getattr(eff, n) for n in FIT_BOUNDS}


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(f"validate: {text}", file=sys.stderr, flush=True)


def validate(engine: str = "analytical", eff: Efficiency = DEFAULT, loso: bool = True, whole: bool = True,
             quiet: bool = False) -> Validation:
    from simulator.progress import progress_bar
    from simulator.validation.runner import load_rows

    rows = load_rows()
    with progress_bar(len(rows), label="building rows", enabled=not quiet) as advance:
        ok, skipped = cases(rows, progress=lambda i, n: advance(1))
    _say(f"{len(ok)} of {len(rows)} published rows expressible, {len(skipped)} not yet", quiet)
    with progress_bar(len(ok), label=f"predicting ({engine})", enabled=not quiet) as advance:
        predicted = []
        for c in ok:
            predicted.append(c.predict(eff, engine))
            advance(1)
    held, refits = {}, {}
    if loso:
        n_src = len({c.source for c in ok})
        _say(f"leave-one-source-out: refitting without each of {n_src} sources (closed form)", quiet)
        with progress_bar(n_src, label="leave-one-source-out", enabled=not quiet) as advance:
            out: list[Held] = leave_one_source_out(ok, eff, progress=lambda i, n: advance(1))
        for h in out:
            refits[h.source] = h.efficiency
            held.update({_key(r): r for r in h.rows})
    whole_rows = whole_run_rows() if whole else []
    return Validation(predicted, held, refits, skipped, whole_rows, len(fit_set(ok)))


def format_validation(v: Validation) -> str:
    sw = max([18] + [len(r.source) for r in v.rows])       # the source column fits the longest name
    head = (f"{'source':<{sw}} {'run':<40} {'GPUs':>5} {'metric':<22} {'published':>10} {'predicted':>10} "
            f"{'error':>7} {'LOSO':>7}")
    lines = [head]
    for r in v.rows:
        h = v.held.get(_key(r))
        loso = f"{100 * h.error:+6.1f}%" if h else f"{'-':>7}"
        lines.append(f"{r.source:<{sw}} {r.run:<40} {r.num_gpus:>5} {r.metric[:22]:<22} {r.published:>10.4g} "
                     f"{r.predicted:>10.4g} {100 * r.error:+6.1f}% {loso}")
    ssw = max(20, sw)
    lines += ["", f"{'mean absolute error':<20} {'source':<{ssw}} {'rows':>5} {'in-sample':>10} "
                  f"{'leave-one-source-out':>21} {'not expressible':>16}"]
    for s in v.summary():
        loso = f"{100 * s['loso_mape']:.1f} %" if s["loso_mape"] is not None else "-"
        lines.append(f"{'':<20} {s['source']:<{ssw}} {s['rows']:>5} {100 * s['in_sample_mape']:>8.1f} % "
                     f"{loso:>21} {s['not_expressible']:>16}")
    worst = max(v.rows, key=lambda r: abs(r.error))
    lines.append(f"mean absolute error all {100 * mape(v.rows):.1f} % ({len(v.rows)} rows); "
                 f"worst {worst.run} {100 * worst.error:+.1f} %")
    for src in v.sources():
        if src in CHECK_ONLY_SOURCES:
            lines.append(f"{src}: predicted, never fitted on ({CHECK_ONLY_SOURCES[src]})")
    if v.fitted:
        lines.append(f"dense parameters fitted on the {v.fitted} dense rows of {len(v.rows)}; the MoE rows inform only "
                     "the host launch time (validation/fit.py, two stages; docs/model.md)")
    if v.skipped:
        lines += ["", "not expressible yet (predicted automatically once the build has the feature):"]
        lines += [f"  {s.source:<18} {s.run:<40} not expressible: {s.reason}" for s in v.skipped]
    return "\n".join(lines)
