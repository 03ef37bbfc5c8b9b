"""Strict configuration: YAML files + --set overrides -> a frozen, validated Scenario."""
from simulator.config.scenario import Layout, Scenario, load_scenario

__all__ = ["Layout", "Scenario", "load_scenario"]
