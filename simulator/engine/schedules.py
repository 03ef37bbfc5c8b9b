"""Pipeline schedules live in simulator/model/schedules.py (pure, shared with the memory model);
re-exported here for the engine."""
from simulator.model.schedules import (  # noqa: F401
    Task, gpipe, interleaved, one_f_one_b, peak_in_flight, peak_live_layers, schedule, zero_bubble_h1,
)
