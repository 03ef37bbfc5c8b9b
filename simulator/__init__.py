"""trainsim: predict what it costs to train a large model on a GPU cluster.

Public API: load_scenario() reads and validates YAML into a Scenario; simulate() turns it into a
Result (step time, MFU, memory, time to train).
"""
from simulator.config.scenario import Scenario, load_scenario
from simulator.errors import ConfigError, InfeasibleError
from simulator.metrics.result import Result
from simulator.simulate import simulate

__version__ = "0.1.0"
__all__ = ["ConfigError", "InfeasibleError", "Result", "Scenario", "load_scenario", "simulate"]
