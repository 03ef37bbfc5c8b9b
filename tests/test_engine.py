"""The step DES against closed forms, and its Chrome trace checked structurally."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import simulate
from simulator.cli import main
from simulator.cost.stage import StageTimes
from simulator.cost.step import DPCost, estimate_step
from simulator.engine.iteration import StepInputs, run_step, simulate_step
from simulator.engine.schedules import peak_in_flight, schedule
from tests.conftest import BUNDLED, WORKLOADS


def inputs(p, m, v, sched, t=1.0, grad=0.0, buckets=1, gather=0.0, p2p=0.0, overlap=True, slow=None):
    w = StageTimes(t / v, 0, 0, 0, 0, t / v / 3, 2 * t / v / 3, t / v / 3)
    return StepInputs(sched, p, m, v, tuple(tuple([w] * v) for _ in range(p)), p2p,
                      tuple(DPCost(grad, gather, buckets, 0) for _ in range(p)), overlap, overlap,
                      (0.0,) * p, (0.0,) * p, tuple(slow or (1.0,) * p))


@settings(max_examples=25, deadline=None)
@given(p=st.integers(1, 8), m=st.integers(1, 24))
def test_1f1b_bubble_is_exact(p, m):
    r = run_step(inputs(p, m, 1, "1f1b"))
    assert (r.step_time - m) / r.step_time == pytest.approx((p - 1) / (m + p - 1), abs=1e-9)
    assert r.breakdown["bubble"] == pytest.approx(r.step_time - m, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(p=st.integers(2, 6), k=st.integers(1, 4), v=st.integers(2, 4))
def test_interleaved_bubble_is_exact(p, k, v):
    m = p * k
    r = run_step(inputs(p, m, v, "interleaved_1f1b"))
    assert (r.step_time - m) / r.step_time == pytest.approx((p - 1) / (v * m + p - 1), abs=1e-9)


def test_gpipe_equals_1f1b_in_time_not_in_memory():
    g, f = run_step(inputs(4, 8, 1, "gpipe")), run_step(inputs(4, 8, 1, "1f1b"))
    assert g.step_time == pytest.approx(f.step_time)
    assert g.peak_in_flight == (8, 8, 8, 8)
    assert f.peak_in_flight == (4, 3, 2, 1)


def test_zero_bubble_h1_beats_1f1b():
    assert run_step(inputs(4, 8, 1, "zb_h1")).step_time < run_step(inputs(4, 8, 1, "1f1b")).step_time


@pytest.mark.parametrize("p,m", [(4, 4), (4, 16), (8, 8), (8, 24)])
def test_zero_bubble_h1_bubble_is_the_papers(p, m):
    """Qi et al. 2024: with F = B = W, ZB-H1's bubble is (p-1)(F+B-W) against 1F1B's (p-1)(F+B+W)."""
    w = StageTimes(3, 0, 0, 0, 0, 1, 2, 1)          # F = 1, B = 1 (input gradient), W = 1
    inp = StepInputs("zb_h1", p, m, 1, tuple(((w,),) * p), 0.0, tuple(DPCost(0, 0, 1, 0) for _ in range(p)),
                     True, True, (0.0,) * p, (0.0,) * p, (1.0,) * p)
    assert run_step(inp).step_time - 3 * m == pytest.approx((p - 1) * (1 + 1 - 1))


def test_overlap_hides_dp_comm_shorter_than_the_backward():
    # one stage, 4 microbatches of 1 s (backward 2/3 s); 0.6 s of gradient reduction in 6 buckets
    hidden = run_step(inputs(1, 4, 1, "1f1b", grad=0.6, buckets=6))
    assert hidden.step_time == pytest.approx(4 + 0.6 / 6)           # only the last bucket shows
    exposed = run_step(inputs(1, 4, 1, "1f1b", grad=0.6, buckets=6, overlap=False))
    assert exposed.step_time == pytest.approx(4 + 0.6)
    longer = run_step(inputs(1, 4, 1, "1f1b", grad=3.0, buckets=6))
    # the first bucket is ready after the first sixth of the last backward; then 6 x 0.5 s in a row
    assert longer.step_time == pytest.approx(4 - 2 / 3 + (2 / 3) / 6 + 3.0, rel=1e-9)


def test_param_gather_overlaps_the_first_forward():
    r = run_step(inputs(1, 4, 1, "1f1b", gather=0.2, buckets=4))
    assert r.step_time == pytest.approx(4 + 0.2 / 4)
    assert r.breakdown["dp_comm"] == pytest.approx(0.05)


def test_p2p_cost_is_attributed():
    r = run_step(inputs(4, 8, 1, "1f1b", p2p=0.01))
    assert r.breakdown["pp_comm"] > 0
    assert sum(r.breakdown.values()) == pytest.approx(r.step_time)


def test_a_straggler_stage_slows_the_step():
    base = run_step(inputs(4, 8, 1, "1f1b"))
    slow = run_step(inputs(4, 8, 1, "1f1b", slow=(1.0, 1.5, 1.0, 1.0)))
    # the slow stage alone is busy 8 x 1.5 s, plus the first forward and last backward of stage 0
    assert slow.step_time >= 12 + 1 / 3 + 2 / 3 - 1e-9
    assert slow.step_time > base.step_time


@pytest.mark.parametrize("name", BUNDLED)
def test_des_agrees_with_the_closed_form(scenario, name):
    s = scenario(name)
    des, cf = simulate_step(s), estimate_step(s)
    assert des.step_time == pytest.approx(cf.step_time, rel=0.02)
    assert sum(des.breakdown.values()) == pytest.approx(des.step_time, rel=1e-9)


def test_schedule_orders():
    assert [t.kind for t in schedule("1f1b", 4, 6, 1)] == list("FFFBFBFBFBBB")
    for sched, v in (("1f1b", 1), ("gpipe", 1), ("interleaved_1f1b", 2), ("zb_h1", 1)):
        for stage in range(4):
            tasks = schedule(sched, 4, 8, stage, v)
            assert sorted((t.kind, t.microbatch, t.chunk) for t in tasks if t.kind == "F") == \
                sorted(("F", j, c) for j in range(8) for c in range(v))
            assert peak_in_flight(tasks) >= 1


def test_chrome_trace_structure(tmp_path, capsys):
    path = tmp_path / "step.json"
    assert main(["run", str(WORKLOADS / "llama3-70b.yaml"), "--trace", str(path),
                 "--set", "training.global_batch_size=256"]) == 0
    doc = json.loads(path.read_text())
    events = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {f"stage {i}" for i in range(4)}
    # no overlap on one stream
    streams: dict = {}
    for e in events:
        streams.setdefault((e["pid"], e["tid"]), []).append(e)
    for evs in streams.values():
        evs.sort(key=lambda e: e["ts"])
        for a, b in zip(evs, evs[1:]):
            assert b["ts"] >= a["ts"] + a["dur"] - 1e-6
    # compute slices follow the schedule's order on every stage
    for stage in range(4):
        seen = [e["name"] for e in sorted(streams[(stage, 0)], key=lambda e: e["ts"])
                if e["name"][0] in "FB" and " " not in e["name"]]
        expected = [f"{t.kind}{t.microbatch}.{t.chunk}" for t in schedule("interleaved_1f1b", 4, 4, stage, 5)]
        dedup = [n for i, n in enumerate(seen) if i == 0 or n != seen[i - 1]]
        assert dedup == expected




def test_chrome_trace_of_host_bound_moe_and_exposed_dp(tmp_path, capsys):
    """Every cause a task carries has a track (an MoE layer's host-bound wait, the unfused gradient
    accumulation), and the step's exposed DP time is drawn: from the last backward to the optimizer
    the dp comm track leaves no gap."""
    path = tmp_path / "moe.json"
    assert main(["run", str(WORKLOADS / "qwen3-30b-a3b.yaml"), "--trace", str(path), "--replicas", "2",
                 "--set", "training.global_batch_size=64"]) == 0
    events = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    tracks = {e["args"]["name"]: e["tid"] for e in json.loads(path.read_text())["traceEvents"]
              if e["ph"] == "M" and e["name"] == "thread_name"}
    assert any(e["tid"] == tracks["host bound"] for e in events)
    for stage in {e["pid"] for e in events}:
        mine = [e for e in events if e["pid"] == stage]
        work_end = max(e["ts"] + e["dur"] for e in mine if e["tid"] == tracks["compute"]
                       and e["name"] != "optimizer step")
        opt = [e["ts"] for e in mine if e["name"] == "optimizer step"]
        if not opt:
            continue
        t = work_end   # walk the wait before the optimizer: slices on the dp comm track cover it
        for e in sorted((e for e in mine if e["tid"] == tracks["dp comm"]), key=lambda e: e["ts"]):
            if e["ts"] <= t + 1e-3:
                t = max(t, e["ts"] + e["dur"])
        assert t >= opt[0] - 1e-3
def test_fast_and_des_report_their_engine(scenario):
    s = scenario("llama3-8b")
    assert simulate(s).engine == "des"
    assert simulate(s, engine="analytical").engine == "analytical"


def test_p2p_time_is_the_transfers_on_the_critical_path():
    # 2 stages, 1 microbatch of F 1/3 s + B 2/3 s each, 0.1 s per transfer: the step is
    # F0 | send | F0 B0 | send | B0 = 2 + 0.2 s, of which the two transfers are 0.2 s
    r = run_step(inputs(2, 1, 1, "1f1b", p2p=0.1))
    assert r.step_time == pytest.approx(2.2, rel=1e-12)
    assert r.breakdown["pp_comm"] == pytest.approx(0.2, rel=1e-12)
    assert r.breakdown["bubble"] == pytest.approx(1.0, rel=1e-12)
