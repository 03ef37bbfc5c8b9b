"""The Result of a simulation and its JSON form (the output contract of design.md)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Result:
    name: str
    cluster: str
    gpu: str
    layout: str
    num_gpus: int
    num_parameters: int
    num_active_parameters: int
    step_time_s: float
    tokens_per_s: float
    mfu: float
    hfu: float
    tflops_per_gpu: float
    memory_per_gpu_gib: float
    memory_capacity_gib: float
    memory_breakdown_gib: dict
    fits_in_memory: bool
    global_batch_size: int
    seq_length: int
    micro_batch_size: int
    num_microbatches: int
    breakdown: dict
    engine: str
    train_steps: int | None = None
    train_tokens: float | None = None
    ideal_time_to_train_days: float | None = None
    stage_utilization: list = field(default_factory=list)
    stage_memory_gib: list = field(default_factory=list)
    stage_memory_breakdown_gib: list = field(default_factory=list)   # per stage: as memory_breakdown_gib
    assumptions: dict = field(default_factory=dict)
    trace: list = field(default_factory=list, repr=False)   # Chrome trace events (not in JSON)
    campaign: object = None                                   # engine.campaign.CampaignResult
    energy: object = None                                     # metrics.energy.CampaignEnergy
    step_power: object = field(default=None, repr=False)      # metrics.power.StepPower (DES)
    # training phases (simulate.py): one dict per phase, its step and its campaign; [] = one phase
    phases: list = field(default_factory=list)
    # a run of phases: (start of the phase in replica 0's timeline in s, its campaign_levels), for
    # the campaign power plot (each phase at its own GPUs and step power); not in the JSON
    phase_power: tuple = field(default=(), repr=False)

    def to_json(self) -> dict:
        """The JSON contract: SI units unless a key's name says otherwise; absent = not modelled."""
        out = {
            "name": self.name, "cluster": self.cluster, "gpu": self.gpu, "layout": self.layout,
            "num_gpus": self.num_gpus, "num_parameters": self.num_parameters,
            "num_active_parameters": self.num_active_parameters,
            "step_time_s": self.step_time_s, "tokens_per_s": self.tokens_per_s, "mfu": self.mfu,
            "hfu": self.hfu, "tflops_per_gpu": self.tflops_per_gpu,
            "memory_per_gpu_gib": self.memory_per_gpu_gib, "memory_capacity_gib": self.memory_capacity_gib,
            "memory_breakdown_gib": self.memory_breakdown_gib, "fits_in_memory": self.fits_in_memory,
            "global_batch_size": self.global_batch_size, "seq_length": self.seq_length,
            "micro_batch_size": self.micro_batch_size, "num_microbatches": self.num_microbatches,
            "engine": self.engine, "stage_utilization": self.stage_utilization,
            "stage_memory_gib": self.stage_memory_gib,
            "stage_memory_breakdown_gib": self.stage_memory_breakdown_gib,
            "breakdown": {k: v for k, v in self.breakdown.items()},
        }
        if self.train_steps is not None:
            out["train_steps"] = self.train_steps
            out["train_tokens"] = self.train_tokens
            out["ideal_time_to_train_days"] = self.ideal_time_to_train_days
        if self.campaign is not None:
            out.update(campaign_json(self.campaign))
        if self.energy is not None:
            out.update(energy_json(self.energy))
        if self.phases:
            out["phases"] = [dict(p) for p in self.phases]
        out["assumptions"] = self.assumptions
        return out


def mtbf_hours(mtbf_s: float) -> float | None:
    """The job's mean time between failures in hours; None (JSON null) when nothing fails."""
    return mtbf_s / 3600.0 if mtbf_s != float("inf") else None


def campaign_json(c) -> dict:
    """The campaign's part of the JSON contract."""
    days = 86400.0
    return {
        "time_to_train_days": c.time_to_train_days,
        "time_to_train_days_p10": c.time_to_train_days_p10,
        "time_to_train_days_p50": c.time_to_train_days_p50,
        "time_to_train_days_p90": c.time_to_train_days_p90,
        "time_to_train_reason": c.time_to_train_reason,       # null when the campaign finishes
        "ettr": c.ettr,
        "failures": dict(c.failures),
        "checkpoint_interval_s": c.checkpoint_interval_s,
        "campaign": {
            "finishes": c.finishes, "simulated": c.simulated,
            "estimated_time_to_train_days": c.estimated_time_to_train_days,
            "max_wall_days": c.max_wall_days, "spare_nodes": c.spare_nodes,
            "idle_spare_nodes": c.idle_spare_nodes,
            "checkpoint_load_s": c.checkpoint_load_s, "warnings": list(c.warnings),
            "replicas": c.replicas, "seed": c.seed, "finished_fraction": c.finished_fraction,
            "wall_days": c.wall_days, "mtbf_hours": mtbf_hours(c.mtbf_s),
            "planned_interruptions": c.planned_interruptions, "stragglers": c.stragglers,
            "checkpoints": c.checkpoints, "checkpoint_size_bytes": c.checkpoint_size_bytes,
            "checkpoint_write_s": c.checkpoint_write_s, "checkpoint_blocking_s": c.checkpoint_blocking_s,
            "restart_s": c.restart_s,
            "time_lost_days": {k: v / days for k, v in c.time_lost_s.items()},
        },
    }


def energy_json(e) -> dict:
    """Energy, power, carbon and money (SI-derived units named in the keys)."""
    mwh = 3.6e9
    return {
        "gpu_hours": e.gpu_hours,
        "energy_mwh": e.energy_j / mwh,
        "it_energy_mwh": e.energy_j / e.pue / mwh,
        "gpu_energy_mwh": e.gpu_energy_j / mwh,
        "gpu_tdp_energy_mwh": e.gpu_tdp_energy_j / mwh,
        "avg_power_mw": e.avg_power_w / 1e6,
        "peak_power_mw": e.peak_power_w / 1e6,
        "step_power_mw": {k: v / 1e6 for k, v in e.step_power_w.items()},
        "step_energy_kwh": e.step_energy_j / 3.6e6,
        "energy_breakdown_mwh": {k: v / mwh for k, v in e.energy_by_use_j.items()},
        "co2_tonnes": e.co2_kg / 1000.0,
        "cost_usd": e.cost_usd,
        "cost_breakdown_usd": dict(e.cost_by_use_usd),
    }
