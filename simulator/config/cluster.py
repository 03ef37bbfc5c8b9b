"""Schema of a cluster YAML: GPU, node, fabric, reliability, power and prices."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from simulator.config.types import (
    Bandwidth, CarbonIntensity, Duration, EnergyPrice, Money, NonNegFloat, NonNegInt, PosInt,
    Power, Strict,
)


class NVLinkConfig(Strict):
    kind: Literal["nvswitch", "nvlink_mesh", "infinity_fabric", "pcie"] = "nvswitch"
    bandwidth: Bandwidth | None = None                  # per GPU per direction; default: the GPU's
    domain_size: PosInt | None = None                   # GPUs in one NVLink domain; default: a node
    latency: Duration = "1 us"


class NodeConfig(Strict):
    gpus_per_node: PosInt = 8
    nvlink: NVLinkConfig = NVLinkConfig()
    nics: PosInt | None = None                          # default: one per GPU
    nic_bandwidth: Bandwidth                            # per NIC


class FabricConfig(Strict):
    kind: Literal["rail_optimized_fat_tree", "fat_tree", "leaf_spine", "rail_only",
                  "torus3d", "dragonfly", "single_switch"] = "fat_tree"
    nodes_per_unit: PosInt = 32                         # DGX SuperPOD scalable unit: 32 nodes
    tiers: PosInt = Field(default=2, le=4)
    oversubscription: float = Field(default=1.0, ge=1.0)
    link_latency: Duration = "1 us"


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
    spare_nodes: NonNegInt = 0


class PowerConfig(Strict):
    pue: float = Field(default=1.1, ge=1.0, le=3.0)    # Google fleet ~1.10
    node_overhead: Power = "2.5 kW"                    # CPUs, DRAM, NICs, fans of a DGX-class node
    switch_power: Power = "1 kW"


class PricesConfig(Strict):
    gpu_hour: Money = "2.5 USD"
    energy: EnergyPrice = "0.08 USD/kWh"
    carbon_intensity: CarbonIntensity = "0.4 kg/kWh"


class ClusterConfig(Strict):
    name: str
    description: str | None = None
    gpu: str | dict[str, Any]                           # catalog name or an inline GPU table
    num_nodes: PosInt
    node: NodeConfig
    fabric: FabricConfig = FabricConfig()
    reliability: ReliabilityConfig = ReliabilityConfig()
    power: PowerConfig = PowerConfig()
    prices: PricesConfig = PricesConfig()
