"""`trainsim plan`: a model size and token count from the Chinchilla fit, priced against a workload.

Three questions (docs/levers.md):
- a compute budget C: the loss-minimising (N, D) with 6 N D = C;
- a target loss L: the least-compute (N, D) reaching L;
- a workload alone: the same predicted loss as the workload (N0, D0) from the compute-optimal size.
``params`` replaces the compute-optimal N by a chosen size (e.g. a smaller model for cheaper
inference) and takes the tokens that give the same loss (or, with a budget, D = C / 6N).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from simulator.config.scenario import Scenario
from simulator.errors import ConfigError
from simulator.explore.levers import Lever, baseline_tokens, resized_lever
from simulator.model import scaling
from simulator.model.arch import resolve
from simulator.model.params import count


@dataclass(frozen=True)
class PlanQuestion:
    compute_budget: float | None = None
    target_loss: float | None = None
    params: float | None = None


def check(q: PlanQuestion, has_workload: bool, fit: scaling.LossFit = scaling.CHINCHILLA) -> None:
    """ConfigError for questions the fit cannot answer."""
    if q.compute_budget is not None and q.target_loss is not None:
        raise ConfigError("give --compute-budget or --target-loss, not both", source="command line")
    if q.compute_budget is None and q.target_loss is None and not has_workload:
        raise ConfigError("nothing to plan", source="command line",
                          expected="--compute-budget FLOPS, --target-loss L, or --workload W.yaml (same loss)")
    if q.compute_budget is not None and q.compute_budget <= 0:
        raise ConfigError("the compute budget must be positive", source="--compute-budget",
                          value=q.compute_budget, expected="FLOPs, e.g. 3.8e25")
    if q.target_loss is not None and not math.isfinite(q.target_loss):
        raise ConfigError("the target loss must be a finite number", source="--target-loss", value=q.target_loss,
                          expected=f"a loss in nats/token above the fit's irreducible loss E = {fit.E}, e.g. 2.0")
    if q.target_loss is not None and q.target_loss <= fit.E:
        raise ConfigError(f"no model reaches a loss at or below the fit's irreducible loss E = {fit.E}",
                          source="--target-loss", value=q.target_loss, expected=f"a loss above {fit.E}")
    if q.params is not None and q.params <= 0:
        raise ConfigError("the model size must be positive", source="--params", value=q.params,
                          expected="e.g. 8B")


def propose(q: PlanQuestion, baseline: scaling.Proposal | None = None,
            fit: scaling.LossFit = scaling.CHINCHILLA) -> scaling.Proposal:
    """The (N, D) answering ``q``; ``baseline`` supplies the target loss when ``q`` has none."""
    if q.compute_budget is not None:
        if q.params is None:
            return scaling.compute_optimal(q.compute_budget, fit)
        return scaling.proposal(q.params, q.compute_budget / (6.0 * q.params), fit)
    target = q.target_loss if q.target_loss is not None else baseline.loss
    if q.params is None:
        return scaling.optimal_for_loss(target, fit)
    d = scaling.tokens_for_loss(q.params, target, fit)
    if d is None:
        raise ConfigError(f"a {q.params / 1e9:.3g}B model never reaches loss {target:.3f} under the fit",
                          source="--params", value=q.params,
                          expected=f"more than {scaling.smallest_params_for_loss(target, fit) / 1e9:.3g}B parameters")
    return scaling.proposal(q.params, d, fit)


def workload_point(s: Scenario, fit: scaling.LossFit = scaling.CHINCHILLA) -> scaling.Proposal:
    """The workload's own (N, D) and its predicted loss (N counts every parameter, as Chinchilla does)."""
    return scaling.proposal(count(resolve(s.workload.model)).total, baseline_tokens(s), fit)


def plan_lever(s: Scenario, p: scaling.Proposal, q: PlanQuestion,
               fit: scaling.LossFit = scaling.CHINCHILLA) -> Lever:
    """The proposal as an architecture of the workload's family; tokens re-derived for the built size
    (same loss when the question fixes the loss, same compute when it fixes the budget)."""
    if q.compute_budget is not None:
        tokens_of = lambda n: q.compute_budget / (6.0 * n)          # noqa: E731
    else:
        tokens_of = lambda n: scaling.tokens_for_loss(n, p.loss, fit)   # noqa: E731
    return resized_lever(s, p.params, tokens_of, "plan", "plan", fit)


def proposal_json(p: scaling.Proposal) -> dict:
    return {**asdict(p), "tokens_per_param": p.tokens_per_param}
