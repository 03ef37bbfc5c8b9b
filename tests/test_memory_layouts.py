"""Layouts today's frameworks run: ZeRO/FSDP with pipelining, HSDP, recompute methods, offloading,
expert TP, gradient dtype -- what they cost, what they admit, and the combinations refused (exit 2)."""
import json

import pytest

from simulator.cli import main
from simulator.cost.step import estimate_step
from simulator.simulate import memory_of

from conftest import WORKLOADS

W8, W405, MIX = (str(WORKLOADS / f"{n}.yaml") for n in ("llama3-8b", "llama3-405b", "mixtral-8x7b"))


def _err(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


def test_the_issue_command_interleaves_the_405b(capsys):
    """The bundled 405B layout (PP16 x V8, one layer per chunk, Llama 3 paper section 3.3.2) and the
    two-chunk interleaving both fit on 16K H100s."""
    code = main(["run", W405, "--fast", "--json", "--replicas", "1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits_in_memory"] and out["layout"].startswith("TP8 PP16 VPP8")
    assert out["breakdown"]["bubble"] / out["step_time_s"] < 0.15   # (p-1)/(v m + p - 1) = 15/143
    code = main(["run", W405, "--fast", "--json", "--replicas", "1",
                 "--set", "parallelism.pipeline_model_parallel_layout=null",
                 "--set", "parallelism.decoder_first_pipeline_num_layers=7",
                 "--set", "parallelism.decoder_last_pipeline_num_layers=7",
                 "--set", "parallelism.virtual_pipeline_model_parallel_size=2"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits_in_memory"]
    assert out["breakdown"]["bubble"] / out["step_time_s"] < 0.40   # (p-1)/(v m + p - 1) = 15/47


def test_json_shows_every_memory_term_per_stage(capsys):
    assert main(["run", W405, "--fast", "--json", "--replicas", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    stages = out["stage_memory_breakdown_gib"]
    assert len(stages) == 16
    for key in ("weights", "gradients", "optimizer", "activations", "runtime", "low_precision_weights",
                "gather_buffers", "fragmentation", "offloaded", "total"):
        assert key in stages[0] and key in out["memory_breakdown_gib"]
    assert [round(s["total"], 9) for s in stages] == [round(t, 9) for t in out["stage_memory_gib"]]


def test_grad_dtype_reaches_memory_wire_and_optimizer(scenario):
    f32 = scenario("llama3-8b", "training.grad_dtype=fp32")
    b16 = scenario("llama3-8b", "training.grad_dtype=bf16")
    assert memory_of(f32).gradients == pytest.approx(2 * memory_of(b16).gradients)
    e32, e16 = estimate_step(f32), estimate_step(b16)
    assert e32.breakdown["optimizer"] > e16.breakdown["optimizer"]
    from simulator.cost import comm
    from simulator.cost.efficiency import DEFAULT
    from simulator.cost.step import dp_cost
    t = comm.tiers_of(f32.cluster, f32.gpu, DEFAULT, f32.num_gpus)
    assert dp_cost(f32, 0, t).grad > 1.5 * dp_cost(b16, 0, t).grad


def test_zero2_with_pipelining_shards_gradients(scenario):
    z1 = scenario("llama3-70b", "parallelism.pipeline_model_parallel_size=4", "parallelism.distributed_optimizer=true")
    z2 = scenario("llama3-70b", "parallelism.pipeline_model_parallel_size=4", "parallelism.distributed_optimizer=false",
                  "parallelism.zero_stage=2")
    assert memory_of(z2).gradients < memory_of(z1).gradients / 10
    c = estimate_step(z2)
    assert c.breakdown["dp_comm"] >= 0 and c.step_time > 0


def test_fsdp_exposed_communication_does_not_grow_linearly_with_dp(scenario):
    """Prefetched per-layer gathers hide behind compute: measured FSDP throughput is roughly flat from
    128 to 512 GPUs, where tensor-by-tensor latency in series grew linearly."""
    def dp_comm(gpus, unit):
        s = scenario("llama3-8b", "parallelism.tensor_model_parallel_size=1", "parallelism.sequence_parallel=false",
                     "parallelism.distributed_optimizer=false", "parallelism.zero_stage=3",
                     "parallelism.recompute_granularity=full", f"parallelism.fsdp_unit={unit}",
                     "parallelism.micro_batch_size=2", f"training.global_batch_size={2 * gpus}", gpus=gpus)
        return estimate_step(s).breakdown["dp_comm"]
    layer = [dp_comm(g, "layer") for g in (128, 512)]
    tensor = [dp_comm(g, "tensor") for g in (128, 512)]
    assert layer[1] < 0.05 * tensor[1]
    assert tensor[1] > 2 * tensor[0]


def test_fsdp_layer_unit_step_stays_flat_with_scale(scenario):
    """Measured FSDP throughput per GPU is roughly flat with scale at a fixed per-GPU batch. The ring
    latency of each gathered unit follows NCCL's model (network hops only between domains, NVLink
    hops inside them), so a Llama 3 8B FSDP step barely moves from 128 to 1,024 GPUs; before, every
    one of the ring's n-1 steps paid a network hop and 1,024 GPUs were 1.5x slower than 128."""
    def step(gpus):
        s = scenario("llama3-8b", "parallelism.tensor_model_parallel_size=1", "parallelism.sequence_parallel=false",
                     "parallelism.distributed_optimizer=false", "parallelism.zero_stage=3",
                     "parallelism.recompute_granularity=full", "parallelism.fsdp_unit=layer",
                     "parallelism.micro_batch_size=1", f"training.global_batch_size={gpus}", gpus=gpus)
        return estimate_step(s).step_time
    assert step(1024) == pytest.approx(step(128), rel=0.02)
    assert step(4096) == pytest.approx(step(512), rel=0.20)


def test_reshard_after_forward_off_gathers_less(scenario):
    base = ("parallelism.tensor_model_parallel_size=1", "parallelism.sequence_parallel=false",
            "parallelism.distributed_optimizer=false", "parallelism.zero_stage=3",
            "parallelism.recompute_granularity=full", "parallelism.micro_batch_size=1", "training.global_batch_size=256")
    on = scenario("llama3-8b", *base, gpus=256)
    off = scenario("llama3-8b", *base, "parallelism.reshard_after_forward=false", gpus=256)
    assert estimate_step(off).breakdown["dp_comm"] <= estimate_step(on).breakdown["dp_comm"]
    assert memory_of(off).weights > memory_of(on).weights


def test_expert_tensor_parallelism_folds(scenario):
    """Mixtral TP2 EP8 with ETP1: experts shard over EP only, EP x ETP divides TP x CP x DP."""
    folded = scenario("mixtral-8x7b", "parallelism.expert_tensor_parallel_size=1", "parallelism.expert_model_parallel_size=8")
    assert folded.layout.expert_tp == 1 and "ETP1" in folded.layout.describe()
    assert memory_of(folded).total > 0


@pytest.mark.parametrize("sets,key", [
    (["parallelism.reshard_after_forward=false"], "parallelism.reshard_after_forward"),
    (["parallelism.data_parallel_shard_degree=3"], "parallelism.data_parallel_shard_degree"),
    (["parallelism.recompute_method=block"], "parallelism.recompute_method"),
    (["parallelism.recompute_granularity=full", "parallelism.recompute_method=block",
      "parallelism.recompute_num_layers=33"], "parallelism.recompute_num_layers"),
    (["parallelism.cpu_offloading_num_layers=4"], "parallelism.cpu_offloading_num_layers"),
    (["parallelism.cpu_offloading=true", "parallelism.cpu_offloading_num_layers=32"],
     "parallelism.cpu_offloading_num_layers"),
    (["parallelism.cpu_offloading=true", "parallelism.cpu_offloading_num_layers=4",
      "parallelism.pipeline_model_parallel_size=2"], "parallelism.cpu_offloading"),
    (["parallelism.expert_tensor_parallel_size=2"], "parallelism.expert_tensor_parallel_size"),
    (["training.grad_dtype=fp16"], "training.grad_dtype"),
])
def test_unsupported_combinations_exit_2(capsys, sets, key):
    argv = ["run", W8, "--fast"]
    for x in sets:
        argv += ["--set", x]
    code, err = _err(capsys, argv)
    assert code == 2, err
    assert key in err and "expected" in err


def test_expert_folding_that_does_not_divide_exits_2(capsys):
    code, err = _err(capsys, ["run", MIX, "--fast", "--set", "parallelism.expert_tensor_parallel_size=4",
                              "--set", "parallelism.expert_model_parallel_size=8", "--gpus", "16"])
    assert code == 2 and "expert_tensor_parallel_size" in err


def test_offloading_admits_a_layout_that_did_not_fit(scenario):
    base = ("parallelism.tensor_model_parallel_size=1", "parallelism.sequence_parallel=false",
            "parallelism.micro_batch_size=2", "training.global_batch_size=1024")
    plain = scenario("llama3-8b", *base)
    off = scenario("llama3-8b", *base, "parallelism.cpu_offloading=true", "parallelism.cpu_offloading_num_layers=30")
    assert memory_of(plain).total > plain.gpu.usable_hbm >= memory_of(off).total


def test_search_reports_why_layouts_were_pruned(capsys):
    code = main(["search", W8, "--gpus", "8", "--tp", "1", "--pp", "1", "--cp", "1", "--zero", "0",
                 "--recompute", "none", "--micro-batch", "4", "--json", "--top", "1"])
    out, err = capsys.readouterr()
    assert code == 3
    assert "do not fit even with ZeRO-3" in err and "GiB" in err


def test_offload_transfers_hide_behind_compute_only_on_a_fast_host_link(scenario):
    """PCIe Gen5 (64 GB/s) cannot hide 30 layers' activations behind an 8B forward; NVLink-C2C
    (GB200, 450 GB/s per direction) can. The closed form and the DES charge the same."""
    from simulator.engine.iteration import simulate_step
    base = ("parallelism.tensor_model_parallel_size=1", "parallelism.sequence_parallel=false",
            "parallelism.micro_batch_size=2", "training.global_batch_size=1024",
            "parallelism.cpu_offloading=true", "parallelism.cpu_offloading_num_layers=30")
    pcie = scenario("llama3-8b", *base)
    c2c = scenario("llama3-8b", *base, cluster="gb200-nvl72")
    assert estimate_step(pcie).breakdown["offload"] > 0.1
    assert estimate_step(c2c).breakdown.get("offload", 0.0) == 0.0
    assert simulate_step(pcie).breakdown["offload"] == pytest.approx(estimate_step(pcie).breakdown["offload"])


def test_deepspeed_list_copies_cost_a_pass_through_hbm(scenario):
    """torch.distributed's list all-gather runs a flat NCCL all-gather and then copies each rank's
    chunk into the output list: one launch per rank plus one read and one write of the buffer. By
    hand for 64 ranks and a 1 GB buffer on an H100 (3.35 TB/s, eta_mem): 64 x 5 us + 2 GB / rate."""
    from simulator.cost import comm
    from simulator.cost.efficiency import DEFAULT
    from simulator.cost.step import LIST_COPY_S, list_copy_time
    s = scenario("llama3-8b", "parallelism.tensor_model_parallel_size=1", "parallelism.sequence_parallel=false",
                 "parallelism.distributed_optimizer=false", "parallelism.zero_stage=3",
                 "parallelism.fsdp_unit=tensor", "training.global_batch_size=64", gpus=64)
    group = comm.Group.of("dp", s.layout)
    assert group.size == 64
    expected = 64 * LIST_COPY_S + 2e9 / (s.gpu.hbm_bandwidth * DEFAULT.memory)
    assert list_copy_time(group, 1e9, s, DEFAULT) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(64 * 5e-6 + 2e9 / (3.35e12 * DEFAULT.memory))
    # the copies are part of every per-tensor gather: a faster HBM shortens the step's DP time
    slow = DEFAULT.with_(memory=0.5 * DEFAULT.memory)
    assert estimate_step(s, slow).breakdown["dp_comm"] > estimate_step(s, DEFAULT).breakdown["dp_comm"]
