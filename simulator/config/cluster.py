"""Schema of a cluster YAML: GPU, node, fabric, reliability, power and prices."""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from simulator.config.types import (
    Bandwidth, CarbonIntensity, Duration, EnergyPrice, Label, Money, NonNegFloat, NonNegInt, PosFloat,
    PosInt, PositiveDuration, Power, Strict,
)
from simulator.limits import MAX_SWITCH_RADIX


class NVLinkConfig(Strict):
    kind: Literal["nvswitch", "nvlink_mesh", "infinity_fabric", "pcie"] = "nvswitch"
    bandwidth: Bandwidth | None = None                  # per GPU per direction; default: the GPU's
    domain_size: PosInt | None = None                   # GPUs in one NVLink domain; default: a node
    latency: Duration = "1 us"
    # NVLink SHARP (in-switch all-reduce): null = NVSwitch 3 or later (nvswitch kind at >= 450 GB/s
    # per GPU per direction: H100, H200, Blackwell); false where NCCL_NVLS_ENABLE=0
    nvls: bool | None = None

    @model_validator(mode="after")
    def _nvls_needs_a_switch(self):
        if self.nvls and self.kind != "nvswitch":
            raise ValueError(f"nvls: true needs kind: nvswitch (NVLink SHARP reduces inside an NVSwitch; "
                             f"a {self.kind} domain has none)")
        return self


class NodeConfig(Strict):
    # at most 1,024: hosts carry 4-8 GPUs (a rack-scale NVLink domain is nvlink.domain_size, NVL72's
    # nodes have 4); 10^9 GPUs in a node made a 512-GPU job draw 860 MW of node overhead
    gpus_per_node: Annotated[int, Field(gt=0, le=1024)] = 8
    nvlink: NVLinkConfig = NVLinkConfig()
    nics: PosInt | None = None                          # default: one per GPU
    nic_bandwidth: Bandwidth                            # per NIC


_RATIO = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*$")


def _ratio(value: object) -> object:
    """An oversubscription written as a switch ratio, "2:1" (downlinks : uplinks), as its number;
    anything else unchanged for the float check."""
    m = _RATIO.match(value) if isinstance(value, str) else None
    if m and float(m[2]) > 0:
        return float(m[1]) / float(m[2])
    return value


Oversubscription = Annotated[float, BeforeValidator(_ratio), Field(ge=1.0)]


class FabricConfig(Strict):
    kind: Literal["rail_optimized_fat_tree", "fat_tree", "leaf_spine", "rail_only",
                  "torus3d", "dragonfly", "single_switch"] = "fat_tree"
    nodes_per_unit: PosInt = 32                         # DGX SuperPOD scalable unit: 32 nodes
    tiers: Annotated[int, Field(gt=0, le=4)] = 2
    oversubscription: Oversubscription = 1.0          # a number (2.0) or a switch ratio ("2:1")
    link_latency: Duration = "1 us"
    # Ports per switch (NVIDIA Quantum-2 QM9700: 64 x NDR 400 Gb/s; Spectrum-4 SN5600: 64 x 800 GbE)
    switch_radix: Annotated[int, Field(ge=2, le=MAX_SWITCH_RADIX)] = 64  # limits.py: 512-port ASICs ship
    # Downlink / uplink capacity per switch tier, leaf first. null: `oversubscription` where traffic
    # leaves a scalable unit (the spines of a 3-tier fat_tree, the leaves otherwise), 1 elsewhere.
    tier_oversubscription: Annotated[list[Oversubscription],
                                     Field(min_length=1, max_length=2)] | None = None
    # torus3d: GPUs along x, y, z (product = the cluster's GPUs); null: the most cube-like
    torus_dims: Annotated[list[PosInt], Field(min_length=3, max_length=3)] | None = None


class ReliabilityConfig(Strict):
    # Llama 3 405B (Meta 2024, Table 5), 54 days on 16,384 H100 = 2,048 nodes (2.65M node-hours):
    # GPU classes 268 -> 1.26e-5 per GPU-hour; host hardware 21 + unplanned host maintenance 32
    # -> 2.0e-5 per node-hour; network switch/cable 35 -> 1.32e-5; software and unknown 63 -> 2.37e-5.
    gpu_failures_per_gpu_hour: NonNegFloat = 1.26e-5
    host_failures_per_node_hour: NonNegFloat = 2.0e-5
    network_failures_per_node_hour: NonNegFloat = 1.32e-5
    software_failures_per_node_hour: NonNegFloat = 2.37e-5
    mean_time_to_detect: Duration = "5 min"
    restart_time: Duration = "15 min"
    # false: restart_time is the reschedule and process start, and the restart adds the communicator
    # init and the checkpoint load to it; true: restart_time is a measured whole restart overhead
    # that already includes them (Kokolis et al. 2024's u0: "initialization" after a restart, e.g.
    # loading the checkpoint), so the restart takes max(restart_time, init + load)
    restart_time_includes_init_and_load: bool = False
    # null: a pool of spare_fraction x the job's nodes (rounded up), so it grows with the job
    spare_nodes: NonNegInt | None = Field(default=None, le=1_000_000)
    # OPT-175B (Zhang et al. 2022, logbook): 124 nodes (992 A100) trained with a 12-node spare pool
    spare_fraction: NonNegFloat = Field(default=12 / 124, le=1)
    # --- campaign engine (simulator/engine/campaign.py; derivations in docs/campaign.md) ---
    # Split of the category rates above into the classes of Llama 3 Table 5 (counts, not the
    # printed percentages): HBM3 72 and silent data corruption 6 of the 268 GPU interruptions;
    # NIC 7 and unplanned host maintenance 32 of the 53 host interruptions.
    hbm_fraction: NonNegFloat = Field(default=0.269, le=1)              # 72 / 268
    sdc_fraction: NonNegFloat = Field(default=0.022, le=1)              # 6 / 268
    nic_fraction: NonNegFloat = Field(default=0.132, le=1)              # 7 / 53
    host_maintenance_fraction: NonNegFloat = Field(default=0.604, le=1)  # 32 / 53
    software_failures_per_job_hour: NonNegFloat = 0.0   # added to the per-node software rate
    # Llama 3: 47 planned interruptions in 54 days on 2,048 nodes -> 47 / 2.654M node-hours
    planned_maintenance_per_node_hour: NonNegFloat = 1.77e-5
    # null: exponential inter-arrival times; published HPC fits are 0.7-0.8 (Schroeder & Gibson 2006),
    # below 0.2 the gaps span hundreds of orders of magnitude
    weibull_shape: PosFloat | None = Field(default=None, ge=0.2, le=10)
    repair_time: Duration = "1 d"      # mean; assumption (HPC: < 1 h to > 1 d, Schroeder & Gibson 2006)
    # MegaScale (NSDI'24): communicator init on 2,048 GPUs 1,047 s -> < 5 s after optimisation;
    # modelled linear in the GPU count: 5 s / 2,048 GPUs = 2.44 ms per GPU
    communicator_init_per_gpu: Duration = "2.44 ms"
    continue_on_fewer_replicas: bool = False            # else wait for a repaired node
    idle_nodes_as_spares: bool = True                   # cluster nodes the job leaves idle
    # a node that slows without failing (slow GPU, slow NIC, flapping link): BLOOM-176B's log
    # (bigscience tr11 chronicles, 2022-04-28) records one slow GPU in ~117 days on 48 nodes
    # (1 / 136,000 node-hours = 7.3e-6) that took the job from 149 to 140 TFLOPs (x1.06)
    straggler_rate_per_node_hour: NonNegFloat = 7.3e-6
    straggler_slowdown: PosFloat = Field(default=1.06, ge=1.0)  # step time x this while slow
    straggler_time_to_detect: Duration = "30 min"       # then the node is swapped for a spare
    # per-step jitter: coefficient of variation of one data-parallel replica's step time (OS noise,
    # thermal throttling, a flapping link); every step waits for the slowest of the dp replicas, so
    # the step stretches by 1 + cv * E[max of dp standard normals]. 0: off (no published fleet value)
    step_jitter: NonNegFloat = Field(default=0.0, le=1.0)
    # horizon of one simulated replica: a campaign still running after max_wall_factor x its ideal
    # time (or after max_wall_time, when set) "does not finish" (ETTR < 10% at the default factor)
    max_wall_factor: PosFloat = Field(default=10.0, ge=1.0, le=1000.0)
    max_wall_time: PositiveDuration | None = None
    # a job's wall-clock limit (a scheduler's, e.g. SLURM --time): before it the job saves a
    # checkpoint and exits, and the next job restarts from it (a planned stop every limit of wall
    # time since the job started; a failure's restart starts a new job). null: no limit
    job_time_limit: PositiveDuration | None = None

    def spare_pool(self, job_nodes: int) -> int:
        """Dedicated spare nodes: ``spare_nodes``, or ``spare_fraction`` of the job's nodes rounded up."""
        if self.spare_nodes is not None:
            return self.spare_nodes
        return math.ceil(self.spare_fraction * job_nodes - 1e-9)

    @model_validator(mode="after")
    def _fractions_fit(self) -> "ReliabilityConfig":
        if self.hbm_fraction + self.sdc_fraction > 1:
            raise ValueError("hbm_fraction + sdc_fraction must be at most 1 (shares of the GPU rate)")
        if self.nic_fraction + self.host_maintenance_fraction > 1:
            raise ValueError("nic_fraction + host_maintenance_fraction must be at most 1 "
                             "(shares of the host rate)")
        return self


class PowerConfig(Strict):
    pue: float = Field(default=1.1, ge=1.0, le=3.0)    # Google fleet ~1.10
    node_overhead: Power = "2.5 kW"                    # CPUs, DRAM, NICs, fans of a DGX-class node
    switch_power: Power = "1 kW"


class PricesConfig(Strict):
    model: Literal["cloud", "owned"] = "cloud"         # rent GPU-hours, or own: capex + energy
    gpu_hour: Money = "2.5 USD"                        # cloud price per GPU-hour (energy included)
    capex_per_gpu: Money = "40000 USD"                 # owned: GPU + its share of server and network
    amortization: PositiveDuration = "4 y"             # owned: write-off period of the capex
    energy: EnergyPrice = "0.08 USD/kWh"               # owned: paid per facility kWh
    carbon_intensity: CarbonIntensity = "0.4 kg/kWh"   # grid average, location based
    carbon_intensity_profile: str | None = None        # CSV of hourly kg/kWh, relative to this file


def _gpu_choice(value: object) -> object:
    if isinstance(value, (str, dict)):
        return value
    raise ValueError("expected a catalog GPU name (e.g. h100-sxm) or an inline table of GPU keys")


GPUChoice = Annotated[Any, BeforeValidator(_gpu_choice)]


class ClusterConfig(Strict):
    name: Label
    description: str | None = None
    gpu: GPUChoice                                      # catalog name or an inline GPU table
    num_nodes: PosInt
    node: NodeConfig
    fabric: FabricConfig = FabricConfig()
    reliability: ReliabilityConfig = ReliabilityConfig()
    power: PowerConfig = PowerConfig()
    prices: PricesConfig = PricesConfig()
    # a file written by `trainsim calibrate` for this cluster, relative to this file: its efficiencies
    # and error band apply to every run on it (--calibration FILE on the command line wins)
    calibration: str | None = None
