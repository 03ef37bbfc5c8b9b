"""Cost levers priced against a workload's baseline: each alone, then the per-step ones combined.

Every lever is a list of ``--set`` overrides on the workload, so any row can be reproduced with
`trainsim run W.yaml --set ...`. Definitions and sources are in docs/levers.md:

- optimizer: an optimizer preset (model/optimizers.py) with its published steps_factor and
  per-step overhead (Sophia: 0.5x the steps, +5% compute per step).
- fp8: precision fp8 (linear layers at the catalog's FP8 peak x Efficiency.fp8_gemm).
- sparsity: 2:4-sparse MLP weights (catalog sparsity_2to4_speedup x Efficiency.sparse_2to4).
- compute_optimal: the same predicted loss from the Chinchilla-optimal size and tokens
  (model/scaling.py), as an architecture of the workload's family (model/resize.py).
- pruned: a structurally pruned copy of the model, retrained (distilled) on a small fraction of the
  baseline's tokens (Minitron). It presumes the baseline model exists: its row is the extra cost of
  the smaller model, not a replacement for the baseline.
- combined: the levers that change only the step time or the step count (optimizer, fp8, sparsity),
  together. Steps and step time compose by multiplication; FP8 and 2:4 sparsity speed up the same MLP
  GEMMs, so their combined step-time gain is less than the product of their separate gains (Amdahl).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulator.config.scenario import Scenario, load_scenario
from simulator.config.workload import ModelConfig
from simulator.errors import ConfigError, InfeasibleError
from simulator.explore.lever_layout import fit_layout
from simulator.model import resize, scaling
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token
from simulator.model.optimizers import preset
from simulator.model.params import count
from simulator.simulate import simulate

from simulator.explore.lever_names import ALL_LEVERS, PRUNE_WIDTH, RETRAIN_FRACTION, STEP_LEVERS  # noqa: F401


@dataclass(frozen=True)
class Lever:
    key: str
    label: str
    overrides: tuple[str, ...]
    resizes: bool = False          # changes the architecture: needs a layout fitted to it
    note: str = ""
    unavailable: str = ""          # why the lever does not apply to this workload (not simulated)


@dataclass(frozen=True)
class LeverOptions:
    optimizer: str = "sophia"
    prune_width: float = PRUNE_WIDTH
    prune_depth: float = 1.0
    retrain_fraction: float = RETRAIN_FRACTION
    distill: bool = True
    levers: tuple[str, ...] = ALL_LEVERS
    given: tuple[str, ...] = ()    # the flags the user set: a lever they make impossible is an error


@dataclass
class LeverRow:
    lever: Lever
    metrics: dict = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict:
        m = dict(self.metrics)
        overrides = m.pop("overrides", list(self.lever.overrides))
        return {"key": self.lever.key, "label": self.lever.label, "note": self.lever.note,
                "error": self.error, "overrides": overrides, "metrics": m}


def baseline_tokens(s: Scenario) -> float:
    """Tokens the baseline trains on (before any optimizer steps_factor)."""
    t = s.workload.training
    if t.train_tokens is not None:
        return float(t.train_tokens)
    if t.train_iters is not None:
        return float(t.train_iters * t.global_batch_size * s.workload.model.seq_length)
    raise ConfigError("the levers need a training length", source=s.workload_source,
                      path="training.train_tokens", expected="training.train_tokens or training.train_iters")


def tokens_overrides(tokens: float) -> list[str]:
    return ["training.train_iters=null", f"training.train_tokens={int(round(tokens))}"]


def optimizer_lever(kind: str) -> Lever:
    """An optimizer preset with its own steps_factor, Hessian interval and per-step overhead (set
    explicitly: a workload's own values describe its baseline optimizer, not this one; null is the
    preset's)."""
    p = preset(kind)
    return Lever("optimizer", f"{kind} optimizer", (f"training.optimizer.kind={kind}",
                 f"training.optimizer.steps_factor={p.steps_factor}",
                 "training.optimizer.hessian_interval=null",
                 "training.optimizer.overhead_flops_fraction=null"),
                 note=f"{p.steps_factor:g}x steps, +{100 * p.overhead_flops_fraction:.0f}% FLOPs/step; {p.source}"
                 + ("" if p.steps_factor >= 1 else "; the paper's step saving, at its scale: independent "
                    "re-evaluations found smaller or no gains (docs/levers.md)"))


def fp8_lever() -> Lever:
    return Lever("fp8", "FP8", ("training.precision=fp8",), note="linear layers in FP8")


def sparsity_lever() -> Lever:
    return Lever("sparsity", "2:4 sparsity", ("training.sparsity_2to4=true",), note="2:4-sparse MLP weights")


def _dense(s: Scenario) -> None:
    if s.workload.model.moe is not None:
        raise ConfigError("the Chinchilla fit is for dense models", source=s.workload_source, path="model.moe",
                          expected="a dense workload for the scaling-law levers")


def resized_lever(s: Scenario, params: float, tokens_of, key: str, label: str,
                  fit: scaling.LossFit = scaling.CHINCHILLA) -> Lever:
    """A model of the workload's family near ``params`` parameters (model/resize.py; KV groups a
    multiple of the workload's TP where the shape allows), trained on ``tokens_of(N)`` tokens for its
    exact size N; ``tokens_of`` returns None when no token count reaches the target."""
    _dense(s)
    m = s.workload.model
    new = resize.scaled_model(m, params, multiple=s.layout.tp)
    n = count(resolve(new)).total
    d = tokens_of(n)
    if d is None:
        raise ConfigError(f"a {n / 1e9:.3g}B model never reaches the target loss under the fit",
                          source="--params", value=params, expected="a larger model")
    return Lever(key, label, tuple(resize.model_overrides(m, new) + tokens_overrides(d)), resizes=True,
                 note=f"{resize.describe(new)}; {d / 1e12:.3g}T tokens, predicted loss {scaling.loss(n, d, fit):.3f}"
                 + (f"; {n / count(resolve(m)).total:.2g}x the parameters to serve" if n > count(resolve(m)).total else ""))


def compute_optimal_lever(s: Scenario, fit: scaling.LossFit = scaling.CHINCHILLA) -> Lever:
    """The baseline's predicted loss from the compute-optimal size (Chinchilla), tokens re-derived
    for the built size so the predicted loss is the baseline's."""
    _dense(s)
    target = scaling.loss(count(resolve(s.workload.model)).total, baseline_tokens(s), fit)
    opt = scaling.optimal_for_loss(target, fit)
    return resized_lever(s, opt.params, lambda n: scaling.tokens_for_loss(n, target, fit),
                         "compute_optimal", "compute-optimal size", fit)


def distill_overhead(teacher: ModelConfig, student: ModelConfig) -> float:
    """A distillation teacher's forward FLOPs per token / the student's forward + backward FLOPs."""
    return (model_flops_per_token(resolve(teacher)) / 3.0) / model_flops_per_token(resolve(student))


def pruned_lever(s: Scenario, width: float, depth: float, fraction: float, distill: bool = True) -> Lever:
    m = s.workload.model
    a = resolve(m)
    narrowest = min(a.hidden, a.ffn, *([m.moe.moe_ffn_hidden_size] if m.moe and m.moe.moe_ffn_hidden_size else []))
    if narrowest < resize.PRUNE_MULTIPLE:
        raise ConfigError(f"the model's narrowest width ({narrowest:,} channels) is under one "
                          f"{resize.PRUNE_MULTIPLE}-channel block: nothing to prune", source="model")
    if narrowest * width < resize.PRUNE_MULTIPLE / 2:   # it would round up to one 128-channel block
        raise ConfigError(f"leaves under half of one {resize.PRUNE_MULTIPLE}-channel block of the narrowest "
                          f"width ({narrowest:,} channels)", source="--prune-width", value=width,
                          expected=f"at least {resize.PRUNE_MULTIPLE / 2 / narrowest:.3g} (Minitron prunes to "
                          "about 0.5-0.75)")
    new = resize.pruned_model(m, width, depth)
    tokens = fraction * baseline_tokens(s)
    ov = resize.model_overrides(m, new) + tokens_overrides(tokens)
    note = f"{resize.describe(new)}; retrain on {tokens / 1e9:.0f}B tokens ({100 * fraction:.1f}%)"
    if distill:
        x = distill_overhead(m, new)
        ov.append(f"training.optimizer.overhead_flops_fraction={x:.4f}")
        note += f", teacher forward +{100 * x:.0f}% FLOPs/step"
    note += "; the cost on top of the trained baseline it is pruned from, not a model trained from scratch"
    return Lever("pruned", f"pruned (width {width:g}, depth {depth:g})", tuple(ov), resizes=True, note=note)


def combined_lever(levers: list[Lever]) -> Lever:
    """The per-step levers together: their overrides concatenated."""
    ov = tuple(o for lv in levers for o in lv.overrides)
    keys = {lv.key for lv in levers}
    note = "steps and step time multiply"
    if {"fp8", "sparsity"} <= keys:
        note += "; FP8 and 2:4 sparsity speed up the same MLP GEMMs, so their gains do not multiply"
    return Lever("combined", " + ".join(lv.label for lv in levers), ov, note=note)


def lever_set(s: Scenario, opts: LeverOptions) -> list[Lever]:
    """Each requested lever alone; one that cannot be built for this workload says why (``unavailable``)."""
    makers = {
        "optimizer": lambda: optimizer_lever(opts.optimizer),
        "fp8": fp8_lever,
        "sparsity": sparsity_lever,
        "compute_optimal": lambda: compute_optimal_lever(s),
        "pruned": lambda: pruned_lever(s, opts.prune_width, opts.prune_depth, opts.retrain_fraction, opts.distill),
    }
    out: list[Lever] = []
    for key in opts.levers:
        try:
            out.append(makers[key]())
        except ConfigError as exc:
            if exc.source in opts.given:   # the user's own flag is wrong: an error, not a missing row
                raise
            out.append(Lever(key, key.replace("_", " "), (), unavailable=str(exc)))
    return out


def row_metrics(r, band=None) -> dict:
    """The table's numbers from a Result (energy and money when the run has them); with ``band``
    (calibration.bands.Band) also their P10-P90 prediction band."""
    j = r.to_json()
    keys = ("num_parameters", "train_tokens", "train_steps", "step_time_s", "mfu", "layout",
            "memory_per_gpu_gib", "ideal_time_to_train_days", "time_to_train_days_p50",
            "time_to_train_days_p90", "gpu_hours", "energy_mwh", "co2_tonnes", "cost_usd")
    out = {k: j.get(k) for k in keys}
    if band is not None:
        from simulator.calibration.bands import BAND_KEYS, band_json

        bands = band_json(r, band)
        out.update({k: bands.get(k) for k in BAND_KEYS})
    return out


def run_lever(lv: Lever, base: Scenario, workload: Path, cluster: Path | None, gpus: int | None,
              base_overrides: list[str], band=None, **sim) -> LeverRow:
    """Simulate one lever on the workload; a lever that does not apply or fit becomes a row with its reason."""
    if lv.unavailable:
        return LeverRow(lv, error=lv.unavailable)
    ov = list(base_overrides) + list(lv.overrides)
    try:
        if lv.resizes:
            m = base.workload.model
            layers = int(next((o.split("=")[1] for o in lv.overrides if o.startswith("model.num_layers=")),
                              m.num_layers))
            ov += fit_layout(workload, cluster, gpus, ov, base.cluster.node.gpus_per_node, layers)
        r = simulate(load_scenario(workload, cluster=cluster, overrides=ov, gpus=gpus), **sim)
    except (ConfigError, InfeasibleError) as exc:
        return LeverRow(lv, error=str(exc))
    metrics = row_metrics(r, band)
    metrics["overrides"] = ov[len(base_overrides):]
    return LeverRow(lv, metrics)


def evaluate(workload: Path, *, cluster: Path | None = None, gpus: int | None = None,
             overrides: list[str] | None = None, opts: LeverOptions = LeverOptions(),
             engine: str = "des", replicas: int = 32, seed: int = 0,
             calibration: str | None = None) -> list[LeverRow]:
    """Baseline, each lever alone, and the per-step levers that apply, combined; ``calibration``: a
    file from `trainsim calibrate` whose efficiencies and band every simulation uses (default: the
    cluster's ``calibration:`` key, else the shipped values)."""
    return evaluate_with(workload, cluster=cluster, gpus=gpus, overrides=overrides, opts=opts, engine=engine,
                         replicas=replicas, seed=seed, calibration=calibration)[0]


def calibrated(calibration: str | None, base: Scenario, sim: dict):
    """(the calibration applied, the band) of pricing levers on ``base``: --calibration or the
    cluster's, whose efficiencies go into ``sim``; else the shipped band of the workload's class."""
    from simulator.calibration.bands import shipped_band_for
    from simulator.calibration.file import resolve

    applied = resolve(calibration, base)
    if applied is not None:
        sim["efficiency"] = applied.efficiencies()
    return applied, (shipped_band_for(base) if applied is None else applied.band)


def evaluate_with(workload: Path, *, cluster: Path | None = None, gpus: int | None = None,
                  overrides: list[str] | None = None, opts: LeverOptions = LeverOptions(),
                  engine: str = "des", replicas: int = 32, seed: int = 0,
                  calibration: str | None = None):
    """``evaluate`` and the calibration it used (calibration.file.Applied, or None: shipped)."""
    base_ov = list(overrides or [])
    base = load_scenario(workload, cluster=cluster, overrides=base_ov, gpus=gpus)
    sim = dict(engine=engine, replicas=replicas, seed=seed)
    applied, band = calibrated(calibration, base, sim)
    baseline = Lever("baseline", "baseline", ())
    rows = [LeverRow(baseline, row_metrics(simulate(base, **sim), band))]
    rows[0].metrics["overrides"] = []
    for lv in lever_set(base, opts):
        rows.append(run_lever(lv, base, workload, cluster, gpus, base_ov, band, **sim))
    step = [r.lever for r in rows if r.lever.key in STEP_LEVERS and not r.error]
    if len(step) >= 2:
        rows.append(run_lever(combined_lever(step), base, workload, cluster, gpus, base_ov, band, **sim))
    return rows, applied
