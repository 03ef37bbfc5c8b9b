"""CUDA_LAUNCH_BLOCKING (training.cuda_launch_blocking): host launch time adds to the kernels' time."""
import pytest

from simulator.cost import comm
from simulator.cost.compute import host_time
from simulator.cost.efficiency import DEFAULT
from simulator.cost.stage import _layer, shard_of
from simulator.cost.step import estimate_step
from simulator.model.arch import resolve
from simulator.model.ops import layer_ops


def _parts(s, eff):
    a, sh = resolve(s.workload.model), shard_of(s)
    tiers = comm.tiers_of(s.cluster, s.gpu, eff, s.num_gpus)
    return _layer(a, s, sh, eff, tiers, moe=False), layer_ops(a, sh, moe=False)


def test_blocking_launches_add_the_whole_host_time_by_hand(scenario):
    """Queued launches hide behind a dense layer's kernels; blocking ones add to them, forward and
    backward: fwd(blocking) = fwd(no host cost) + launches x host_launch."""
    queued = scenario("llama3-8b", "parallelism.recompute_granularity=none")
    blocking = scenario("llama3-8b", "parallelism.recompute_granularity=none",
                        "training.cuda_launch_blocking=true")
    eff = DEFAULT.with_(host_launch=2e-5)
    free, _ = _parts(queued, DEFAULT.with_(host_launch=0.0))
    q, _ = _parts(queued, eff)
    b, ops = _parts(blocking, eff)
    assert q.host == 0.0 and q.fwd == pytest.approx(free.fwd)   # the kernels outlast their launches
    assert b.host_fwd == pytest.approx(host_time(ops, "bf16", eff))
    assert b.host_bwd == pytest.approx(host_time(ops, "bf16", eff, backward=True))
    assert b.fwd == pytest.approx(free.fwd + b.host_fwd) and b.bwd == pytest.approx(free.bwd + b.host_bwd)


def test_blocking_slows_the_step_and_shows_as_host_bound(scenario):
    queued = estimate_step(scenario("llama3-8b"))
    blocking = estimate_step(scenario("llama3-8b", "training.cuda_launch_blocking=true"))
    assert blocking.step_time > queued.step_time
    assert blocking.breakdown.get("host_bound", 0.0) > 0.0
    assert sum(blocking.breakdown.values()) == pytest.approx(blocking.step_time)
