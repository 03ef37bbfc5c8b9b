"""Collects the events of a simulated step in Chrome trace form (written by report/trace.py).

One process per pipeline stage, one thread (track) per stream: compute, TP/CP/EP comm, pipeline
sends, data-parallel comm. Times are microseconds, as the trace-event format expects.
"""
from __future__ import annotations

# "host bound": the GPU idle while the host launches the layer's kernels (part of a task's time)
TRACKS = ("compute", "tp comm", "cp comm", "ep comm", "pp send", "pp send (grad)", "dp comm", "host bound")


class Tracer:
    def __init__(self, stages: int):
        self.events: list[dict] = []
        for st in range(stages):
            self.events.append({"name": "process_name", "ph": "M", "pid": st, "tid": 0,
                                "args": {"name": f"stage {st}"}})
            self.events.append({"name": "process_sort_index", "ph": "M", "pid": st, "tid": 0,
                                "args": {"sort_index": st}})
            for tid, track in enumerate(TRACKS):
                self.events.append({"name": "thread_name", "ph": "M", "pid": st, "tid": tid,
                                    "args": {"name": track}})

    def slice(self, stage: int, track: str, name: str, start: float, end: float) -> None:
        self.events.append({"name": name, "cat": track, "ph": "X", "pid": stage,
                            "tid": TRACKS.index(track), "ts": start * 1e6, "dur": (end - start) * 1e6})
