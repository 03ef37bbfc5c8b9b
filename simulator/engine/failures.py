"""Failure classes of a placed job: rates per component scaled by the job's component counts.

Default rates (simulator/config/cluster.py, ReliabilityConfig) come from Llama 3 405B, Table 5
(Meta 2024): 419 unexpected interruptions in 54 days on 16,384 H100 = 2,048 nodes, i.e.
16,384 × 1,296 h = 21.23M GPU-hours and 2,048 × 1,296 h = 2.654M node-hours:

  class             Table 5 rows                                   count  rate
  gpu               faulty GPU 148, SRAM 19, system processor 17,   184  ┐ 268 / 21.23M GPU-h
                    thermal interface + sensor 6                         │ = 1.26e-5 per GPU-hour
  hbm               GPU HBM3 memory                                  72  │ (hbm_fraction 0.269,
  sdc               silent data corruption                            6  ┘  sdc_fraction 0.022)
  host              SSD 3, PSU 3, chassis 2, IO board 2, CPU 2,      14  ┐ 53 / 2.654M node-h
                    system memory 2                                      │ = 2.0e-5 per node-hour
  nic               NIC                                               7  │ (nic_fraction 0.132,
  host_maintenance  unplanned host maintenance                       32  ┘  host_maint. 0.604)
  network           network switch/cable                             35  1.32e-5 per node-hour
  software          software bug 54, dependency 2, NCCL watchdog 7   63  2.37e-5 per node-hour

Cross-check, Meta RSC (Kokolis et al. 2024): 6.50 failures per 1,000 node-days on RSC-1 (16K A100)
is 2.7e-4 per node-hour; Llama 3's 419 / 2.654M node-hours is 1.58e-4, the same order (RSC counts
every job failure of a research cluster, including user-visible ones that would not stop a
production job).

Hardware classes (gpu, hbm, sdc, host, nic, host_maintenance) take a node out of the job for a
repair; network and software failures restart the job on the same nodes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.config.cluster import ReliabilityConfig
from simulator.rng import Sampler

HOUR = 3600.0


@dataclass(frozen=True)
class FailureClass:
    name: str
    rate_per_s: float          # arrivals per wall second for the whole job
    takes_node: bool           # a node goes to repair; a spare replaces it


def failure_classes(rel: ReliabilityConfig, num_gpus: int, num_nodes: int) -> tuple[FailureClass, ...]:
    """The unexpected-interruption classes of a job on ``num_gpus`` GPUs in ``num_nodes`` nodes."""
    gpu = rel.gpu_failures_per_gpu_hour * num_gpus / HOUR
    host = rel.host_failures_per_node_hour * num_nodes / HOUR
    return (
        FailureClass("gpu", gpu * (1.0 - rel.hbm_fraction - rel.sdc_fraction), True),
        FailureClass("hbm", gpu * rel.hbm_fraction, True),
        FailureClass("sdc", gpu * rel.sdc_fraction, True),
        FailureClass("host", host * (1.0 - rel.nic_fraction - rel.host_maintenance_fraction), True),
        FailureClass("nic", host * rel.nic_fraction, True),
        FailureClass("host_maintenance", host * rel.host_maintenance_fraction, True),
        FailureClass("network", rel.network_failures_per_node_hour * num_nodes / HOUR, False),
        FailureClass("software", (rel.software_failures_per_node_hour * num_nodes
                                  + rel.software_failures_per_job_hour) / HOUR, False),
    )


CLASS_NAMES = ("gpu", "hbm", "sdc", "host", "nic", "host_maintenance", "network", "software")


def job_mtbf_s(classes: tuple[FailureClass, ...]) -> float:
    """Mean time between unexpected interruptions of the job (inf when no failures)."""
    total = sum(c.rate_per_s for c in classes)
    return math.inf if total <= 0 else 1.0 / total


def interarrival(rng, rate_per_s: float, weibull_shape: float | None) -> Sampler:
    """Time-between-arrivals sampler with mean 1/rate: exponential, or Weibull of a given shape.

    Weibull applies to the job-level inter-arrival times of a class (Schroeder & Gibson, DSN 2006:
    times between failures of HPC systems fit a Weibull with decreasing hazard, i.e. shape < 1);
    its scale keeps the mean, so the expected count in a long window is unchanged.
    """
    mean = 1.0 / rate_per_s
    if weibull_shape is None or weibull_shape == 1.0:
        return Sampler(rng, "exponential", mean)
    return Sampler(rng, "weibull", mean / math.gamma(1.0 + 1.0 / weibull_shape), weibull_shape)
