"""Fit the global efficiency parameters on the public validation set, and leave-one-source-out checks.

    python -m simulator.validation.fit        # prints the best values (a person writes them into
                                              # simulator/cost/efficiency.py and docs/model.md)

The objective is the mean absolute percentage error of the published metric, on the closed-form tier
(the step DES agrees with it within 2% on these rows), fitted in two stages, each parameter on the
rows that inform it: the dense efficiencies on every expressible dense row (``fit_set``), then the
MoE-only parameters (``MOE_PARAMETERS``: the host launch time, which only MoE layers' many small
kernels expose) on the MoE rows with the dense ones held (``moe_set``). Each parameter
lives in its published physical range (``FIT_BOUNDS`` in cost/efficiency.py), mapped to [0, 1].

Optimiser (a small trust-region method, numpy only): at the current point, predict every row and
the finite-difference slope of log(prediction) with respect to each parameter (P + 1 closed-form
passes); minimise the MAPE of that linear model inside the box and a trust region by coordinate
search on a fine grid (cheap: array arithmetic, no simulation); accept the step if the exact MAPE
improves, otherwise shrink the region. A few rounds suffice because the step time is smooth and
nearly log-linear in these parameters.

Leave-one-source-out: drop one source's rows, refit on the rest, predict the dropped rows exactly
with the refitted parameters. The refit starts from the full-set linear model (already computed) and
takes ``loso_rounds`` exact trust-region rounds on the remaining rows.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from simulator.cost.efficiency import DEFAULT, FIT_BOUNDS, Efficiency
from simulator.validation.runner import Case, Row, mape

GRID_POINTS = 41        # values tried per coordinate inside the trust region
STEP = 0.03             # finite-difference step, as a fraction of each parameter's range
WEIGH_SOURCES = True    # objective: mean of the per-source MAPEs (source_weights)


def _to_unit(eff: Efficiency, names: tuple[str, ...]) -> np.ndarray:
    return np.array([(getattr(eff, n) - FIT_BOUNDS[n][0]) / (FIT_BOUNDS[n][1] - FIT_BOUNDS[n][0])
                     for n in names]).clip(0.0, 1.0)


def _from_unit(base: Efficiency, names: tuple[str, ...], x: np.ndarray) -> Efficiency:
    return base.with_(**{n: float(FIT_BOUNDS[n][0] + xi * (FIT_BOUNDS[n][1] - FIT_BOUNDS[n][0]))
                         for n, xi in zip(names, x)})


@dataclass
class Linear:
    """log(prediction) of each row near ``x``: ``p0 + J @ (z - x)``."""

    x: np.ndarray
    p0: np.ndarray          # log predicted metric per row
    J: np.ndarray           # rows x parameters

    def take(self, idx: np.ndarray) -> "Linear":
        return Linear(self.x, self.p0[idx], self.J[idx])


def _log_preds(cases: list[Case], eff: Efficiency) -> np.ndarray:
    return np.log([c.predict(eff).predicted for c in cases])


def linearise(cases: list[Case], base: Efficiency, names: tuple[str, ...], x: np.ndarray,
              p0: np.ndarray | None = None) -> Linear:
    p0 = _log_preds(cases, _from_unit(base, names, x)) if p0 is None else p0
    J = np.zeros((len(cases), len(names)))
    for j in range(len(names)):
        h = STEP if x[j] + STEP <= 1.0 else -STEP
        z = x.copy()
        z[j] += h
        J[:, j] = (_log_preds(cases, _from_unit(base, names, z)) - p0) / h
    return Linear(x, p0, J)


def _objective(logp: np.ndarray, log_pub: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted MAPE of each candidate (columns of ``logp``) against the published values."""
    err = np.abs(np.exp(logp - log_pub[:, None]) - 1.0)
    return err.mean(axis=0) if w is None else (w[:, None] * err).sum(axis=0)


def source_weights(cases: list[Case]) -> np.ndarray:
    """Every source weighs the same, however many rows it printed (a 1-row source counts as much as
    a 12-row table): the objective is the mean of the per-source MAPEs."""
    counts: dict[str, int] = {}
    for c in cases:
        counts[c.source] = counts.get(c.source, 0) + 1
    return np.array([1.0 / (counts[c.source] * len(counts)) for c in cases])


def coordinate_search(lin: Linear, radius: float, score, sweeps: int,
                      anchor: np.ndarray | None = None) -> np.ndarray:
    """Coordinate search of the linear model inside the box [0,1]^P within ``radius`` of lin.x.

    ``score(logp, xs)`` rates candidates: columns of logp (rows x K) and of xs (params x K). Each
    coordinate tries a grid of GRID_POINTS over its range plus its current value; with ``anchor``
    (a point the objective pulls towards, e.g. a prior) also the anchor's value, the grid then kept
    inside the trust region when that is smaller than the box."""
    z = lin.x.copy()
    lo, hi = np.clip(lin.x - radius, 0, 1), np.clip(lin.x + radius, 0, 1)
    for _ in range(sweeps):
        moved = False
        for j in range(len(z)):
            base = lin.p0 + lin.J @ (z - lin.x) - lin.J[:, j] * (z[j] - lin.x[j])
            extra = [z[j]] if anchor is None else [z[j], anchor[j]]
            grid = np.unique(np.concatenate([np.linspace(lo[j], hi[j], GRID_POINTS), extra]))
            if anchor is not None and radius < 1:
                grid = grid[(grid >= lo[j]) & (grid <= hi[j])]
                if not len(grid):
                    continue
            xs = np.repeat(z[:, None], len(grid), axis=1)
            xs[j] = grid
            scores = score(base[:, None] + np.outer(lin.J[:, j], grid - lin.x[j]), xs)
            best = grid[int(np.argmin(scores))]
            if best != z[j]:
                moved, z[j] = True, best
        if not moved:
            break
    return z


def _surrogate_min(lin: Linear, log_pub: np.ndarray, radius: float, w: np.ndarray | None,
                   sweeps: int = 6) -> np.ndarray:
    """Coordinate search of the linear model's MAPE in the box [0,1]^P within ``radius`` of lin.x."""
    return coordinate_search(lin, radius, lambda logp, xs: _objective(logp, log_pub, w), sweeps)


def trust_region(cases, base: Efficiency, names: tuple[str, ...], x: np.ndarray, lin: Linear, best: float,
                 surrogate, score, rounds: int, tol: float, shrink_on_stall: bool = False,
                 on_round=None) -> tuple[np.ndarray, Linear]:
    """The trust-region loop both fits share: minimise the linearised ``surrogate(lin, radius)``,
    keep its step when the true ``score(log_preds, z)`` improves by more than ``tol`` (then
    re-linearise there), halve the radius otherwise. A step that does not move ends the loop, or
    with ``shrink_on_stall`` halves the radius until it is below 1e-3."""
    radius = 0.5
    for k in range(rounds):
        z = surrogate(lin, radius)
        if np.allclose(z, x):
            if not shrink_on_stall or radius < 1e-3:
                break
            radius /= 2
            continue
        pz = _log_preds(cases, _from_unit(base, names, z))
        value = score(pz, z)
        if on_round:
            on_round(k, value, best)
        if value < best - tol:
            x, best = z, value
            if k + 1 < rounds:
                lin = linearise(cases, base, names, x, pz)
        else:
            radius /= 2
    return x, lin


def fit(cases: list[Case], start: Efficiency = DEFAULT, names: tuple[str, ...] = tuple(FIT_BOUNDS),
        rounds: int = 4, lin: Linear | None = None, out=None) -> tuple[Efficiency, Linear]:
    """Minimise the MAPE over ``cases``; returns the best parameters and the last linear model."""
    log_pub = np.log([float(c.row["value"]) for c in cases])
    w = source_weights(cases) if WEIGH_SOURCES else None
    x = _to_unit(start, names) if lin is None else lin.x.copy()
    p = _log_preds(cases, _from_unit(start, names, x)) if lin is None else None
    lin = lin or linearise(cases, start, names, x, p)
    best = float(_objective(lin.p0[:, None], log_pub, w)[0])

    def report(k: int, value: float, was: float) -> None:
        if out:
            print(f"  round {k + 1}: MAPE {100 * value:.2f} % (was {100 * was:.2f} %)", file=out)

    x, lin = trust_region(cases, start, names, x, lin, best,
                          lambda ln, r: _surrogate_min(ln, log_pub, r, w),
                          lambda pz, z: float(_objective(pz[:, None], log_pub, w)[0]),
                          rounds, 1e-6, on_round=report)
    return _from_unit(start, names, x), lin


@dataclass(frozen=True)
class Held:
    """One source left out: its rows predicted by parameters fitted without it."""

    source: str
    efficiency: Efficiency
    rows: list[Row]


# Parameters fitted on the MoE rows only, after the dense ones (the dense rows are not host-bound,
# so they carry no information on them and a joint fit would push them to whatever suits dense noise).
MOE_PARAMETERS: tuple[str, ...] = ("host_launch",)
# Their value where no MoE row is left to fit them (a leave-one-source-out refit without the only
# MoE source): an a-priori figure, not a fit. Eager PyTorch costs ~10 us of framework dispatch per op
# (H. He, "Making Deep Learning Go Brrrr From First Principles", 2022), the middle of FIT_BOUNDS.
UNINFORMED: dict[str, float] = {"host_launch": 1.0e-5}
DENSE_PARAMETERS: tuple[str, ...] = tuple(n for n in FIT_BOUNDS if n not in MOE_PARAMETERS)


def fit_set(cases: list[Case]) -> list[Case]:
    """The rows the dense parameters are fitted on (runner.Case.in_fit: every expressible dense row)."""
    return [c for c in cases if getattr(c, "in_fit", True)]


def moe_set(cases: list[Case]) -> list[Case]:
    """The rows the MoE parameters are fitted on: every expressible MoE row (not the check-only ones)."""
    return [c for c in cases if not getattr(c, "in_fit", True) and not getattr(c, "check_only", False)]


def fit_staged(cases: list[Case], start: Efficiency = DEFAULT, rounds: int = 4, lin: "Linear | None" = None,
               out=None) -> tuple[Efficiency, "Linear"]:
    """Dense parameters on the dense rows, then the MoE parameters on the MoE rows (dense held).
    With no MoE row among ``cases`` the MoE parameters take their UNINFORMED values."""
    dense, moe = fit_set(cases), moe_set(cases)
    best, lin = fit(dense, start, DENSE_PARAMETERS, rounds=rounds, lin=lin, out=out)
    if moe:
        best, _ = fit(moe, best, MOE_PARAMETERS, rounds=rounds, out=out)
    else:
        best = best.with_(**UNINFORMED)
    return best, lin


def leave_one_source_out(cases: list[Case], eff: Efficiency = DEFAULT, names: tuple[str, ...] | None = None,
                         loso_rounds: int = 1, progress=None) -> list[Held]:
    """For every source: refit on the other sources' rows, predict all this source's rows. The refit is
    the shipped two-stage one (fit_staged); with ``names``, only those parameters on the fit set."""
    sources = list(dict.fromkeys(c.source for c in cases))
    if len(sources) < 2:
        return []
    pool = fit_set(cases)
    first = names or DENSE_PARAMETERS
    full = linearise(pool, eff, first, _to_unit(eff, first))
    fitted_on = {c.source for c in pool} | {c.source for c in moe_set(cases)}
    out = []
    for i, src in enumerate(sources):
        if src not in fitted_on:   # no row of either fit stage (a check-only source): the refit is the fit
            out.append(Held(src, eff, [c.predict(eff) for c in cases if c.source == src]))
            if progress:
                progress(i + 1, len(sources))
            continue
        keep = np.array([c.source != src for c in pool])
        train = [c for c in cases if c.source != src]
        lin = full.take(np.flatnonzero(keep))
        if names:
            refit, _ = fit(fit_set(train), eff, names, rounds=loso_rounds, lin=lin)
        else:
            refit, _ = fit_staged(train, eff, rounds=loso_rounds, lin=lin)
        out.append(Held(src, refit, [c.predict(refit) for c in cases if c.source == src]))
        if progress:
            progress(i + 1, len(sources))
    return out


def main() -> None:
    from simulator.validation.runner import cases as build

    ok, _ = build()
    rows = fit_set(ok)
    print(f"fitting {', '.join(DENSE_PARAMETERS)} on {len(rows)} dense rows, then {', '.join(MOE_PARAMETERS)} "
          f"on {len(moe_set(ok))} MoE rows, of {len(ok)} expressible rows", file=sys.stderr)
    best, _ = fit_staged(ok, out=sys.stderr)
    for name in FIT_BOUNDS:
        lo, hi = FIT_BOUNDS[name]
        v = getattr(best, name)
        edge = "  <- at a bound" if min(v - lo, hi - v) <= 1e-3 * (hi - lo) else ""
        print(f"{name} = {v:.4g}   (range {lo:g} .. {hi:g}){edge}")
    print(f"MAPE = {100 * mape([c.predict(best) for c in rows]):.2f} % on the dense rows, "
          f"{100 * mape([c.predict(best) for c in moe_set(ok)]):.2f} % on the MoE rows, "
          f"{100 * mape([c.predict(best) for c in ok]):.2f} % on all {len(ok)} rows")


if __name__ == "__main__":
    main()
