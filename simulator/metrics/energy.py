"""Energy, carbon and money of a training campaign, including what failures waste.

Inputs are the step's power (metrics/power.py) and the campaign's mean time per state
(engine/campaign.py): time spent training (productive, or redone after a failure, or slowed by a
straggler) draws the step's average power; blocking checkpoint writes draw the waiting power;
detection, waiting for spares, restarts and planned maintenance draw idle power; spare nodes idle
for the whole campaign. Facility energy = PUE x IT energy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from simulator.config.carbon_profile import read_profile

HOUR = 3600.0
# evaluation runs forward passes on the GPUs: priced at the step's power (an upper bound)
TRAINING_CAUSES = ("lost_work", "stragglers", "fewer_replicas", "evaluation")
IDLE_CAUSES = ("detection", "waiting_for_spares", "restart", "planned_maintenance", "time_limit")


@dataclass(frozen=True)
class CampaignEnergy:
    wall_s: float
    gpu_hours: float
    energy_j: float                          # facility
    energy_by_use_j: dict                    # productive, lost_work, ..., spares
    avg_power_w: float
    peak_power_w: float
    co2_kg: float
    cost_usd: float
    cost_by_use_usd: dict
    step_energy_j: float
    step_power_w: dict = field(default_factory=dict)   # avg, min, max over one step
    pue: float = 1.0
    gpu_energy_j: float = 0.0                # the job's GPUs alone (no nodes, switches or PUE)
    # the job's GPU-hours x the GPU's TDP: the convention of published whole-run figures
    # (Luccioni et al. 2022 for BLOOM: 1,082,990 GPU-h x 400 W = 433,196 kWh), an upper bound
    gpu_tdp_energy_j: float = 0.0


def energy_by_use(wall_s: float, lost_s: dict, step_w: float, wait_w: float, idle_w: float,
                  spares_w: float) -> dict:
    """Facility joules per use of the time: productive training, each kind of waste, spares."""
    out = {cause: lost_s.get(cause, 0.0) * step_w for cause in TRAINING_CAUSES}
    out["checkpoint"] = lost_s.get("checkpoint", 0.0) * wait_w
    out.update({cause: lost_s.get(cause, 0.0) * idle_w for cause in IDLE_CAUSES})
    overhead = sum(lost_s.get(c, 0.0) for c in (*TRAINING_CAUSES, "checkpoint", *IDLE_CAUSES))
    out = {"productive": max(wall_s - overhead, 0.0) * step_w, **out}
    out["spares"] = spares_w * wall_s
    return out


def carbon_kg(energy_j: float, wall_s: float, intensity_kg_per_j: float,
              profile_kg_per_kwh: list[float] | None = None) -> float:
    """CO2e of ``energy_j`` drawn evenly over ``wall_s``: a constant intensity, or an hourly profile
    (repeated as needed) averaged over the campaign's hours."""
    if not profile_kg_per_kwh:
        return energy_j * intensity_kg_per_j
    hours = max(1, math.ceil(wall_s / HOUR))
    n = len(profile_kg_per_kwh)
    full, rest = divmod(hours, n)
    mean = (full * sum(profile_kg_per_kwh) + sum(profile_kg_per_kwh[:rest])) / hours
    return energy_j / 3.6e6 * mean


def cost_by_use(model: str, wall_s: float, gpus: int, spare_gpus: float, lost_s: dict, energy_j: float,
                gpu_hour_usd: float, capex_per_gpu: float, amortization_s: float,
                energy_usd_per_j: float) -> dict:
    """Dollars by use. Cloud: GPU-hours of the job's and the spare GPUs at the list price (energy
    included). Owned: amortized capex for the same GPU-hours plus the facility energy bill."""
    rate = gpu_hour_usd if model == "cloud" else capex_per_gpu / (amortization_s / HOUR)
    per_s = gpus * rate / HOUR
    out = {cause: v * per_s for cause, v in lost_s.items() if v > 0}
    out["productive"] = max(wall_s - sum(lost_s.values()), 0.0) * per_s
    out["spares"] = spare_gpus * rate * wall_s / HOUR
    if model == "owned":
        out["energy"] = energy_j * energy_usd_per_j
    return out


def account(s, step_w: float, step_min_w: float, step_max_w: float, step_time: float, camp,
            power) -> CampaignEnergy:
    """Energy, carbon and cost of a Scenario's campaign (``camp``: CampaignResult; ``power``:
    PowerModel) from the step's facility power."""
    c = s.cluster
    wall = camp.wall_days * 86400.0
    lost = dict(camp.time_lost_s)
    gpn = c.node.gpus_per_node
    # the job carries its share of the cluster's spare pool
    spare_nodes = c.reliability.spare_pool(c.num_nodes) * power.nodes / c.num_nodes
    spares_w = power.pue * spare_nodes * (power.node_overhead + gpn * power.idle)
    uses = energy_by_use(wall, lost, step_w, power.facility(power.gpus * power.gpu_watts(0)),
                         power.idle_facility(), spares_w)
    energy = sum(uses.values())
    gpu_step_w = step_w / power.pue - power.fixed_it
    idle_s = sum(lost.get(k, 0.0) for k in IDLE_CAUSES)
    ckpt_s = lost.get("checkpoint", 0.0)
    gpu_energy = ((wall - idle_s - ckpt_s) * gpu_step_w + ckpt_s * power.gpus * power.gpu_watts(0)
                  + idle_s * power.gpus * power.idle)
    prices = c.prices
    profile = None
    if prices.carbon_intensity_profile:
        profile = read_profile(Path(s.cluster_source).parent / prices.carbon_intensity_profile)
    co2 = carbon_kg(energy, wall, prices.carbon_intensity, profile)
    costs = cost_by_use(prices.model, wall, s.num_gpus, spare_nodes * gpn, lost, energy,
                        prices.gpu_hour, prices.capex_per_gpu, prices.amortization, prices.energy)
    return CampaignEnergy(
        wall_s=wall, gpu_hours=s.num_gpus * wall / HOUR, energy_j=energy, energy_by_use_j=uses,
        avg_power_w=energy / wall if wall else 0.0, peak_power_w=spares_w + step_max_w,
        co2_kg=co2, cost_usd=sum(costs.values()), cost_by_use_usd=costs,
        step_energy_j=step_w * step_time,
        step_power_w={"avg": step_w, "min": step_min_w, "max": step_max_w}, pue=power.pue,
        gpu_energy_j=gpu_energy, gpu_tdp_energy_j=s.num_gpus * s.gpu.tdp * wall)


def _sum_dicts(ds) -> dict:
    out: dict = {}
    for d in ds:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return out


def combine(parts: list[CampaignEnergy]) -> CampaignEnergy:
    """The energy of a run of training phases (engine/phases.py): sums, and the peak of the peaks;
    the step figures are those of the phase with the most wall time."""
    main = max(parts, key=lambda e: e.wall_s)
    wall, energy = sum(e.wall_s for e in parts), sum(e.energy_j for e in parts)
    return CampaignEnergy(
        wall_s=wall, gpu_hours=sum(e.gpu_hours for e in parts), energy_j=energy,
        energy_by_use_j=_sum_dicts(e.energy_by_use_j for e in parts),
        avg_power_w=energy / wall if wall else 0.0, peak_power_w=max(e.peak_power_w for e in parts),
        co2_kg=sum(e.co2_kg for e in parts), cost_usd=sum(e.cost_usd for e in parts),
        cost_by_use_usd=_sum_dicts(e.cost_by_use_usd for e in parts), step_energy_j=main.step_energy_j,
        step_power_w=dict(main.step_power_w), pue=main.pue,
        gpu_energy_j=sum(e.gpu_energy_j for e in parts),
        gpu_tdp_energy_j=sum(e.gpu_tdp_energy_j for e in parts))
