"""trainsim: predict what it costs to train a large model on a GPU cluster.

Public API: load_scenario() reads and validates YAML into a Scenario; simulate() turns it into a
Result (step time, MFU, memory, time to train). The names are imported on first use, so that
`trainsim --help` and commands that need none of the model do not pay for its imports.
"""
import sys
import types
from importlib import import_module

__version__ = "0.1.0"
__all__ = ["ConfigError", "InfeasibleError", "Result", "Scenario", "load_scenario", "simulate"]

_WHERE = {"Scenario": "simulator.config.scenario", "load_scenario": "simulator.config.scenario",
          "ConfigError": "simulator.errors", "InfeasibleError": "simulator.errors",
          "Result": "simulator.metrics.result", "simulate": "simulator.simulate"}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])


class _Package(types.ModuleType):
    """The package keeps ``simulate`` the function when its submodule of that name is imported
    later (the import system binds a submodule on its package; the eager import did not care)."""

    def __setattr__(self, name, value):
        if name == "simulate" and isinstance(value, types.ModuleType):
            value = value.simulate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
