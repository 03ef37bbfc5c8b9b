"""Pipeline layouts (Megatron-Core pipeline_model_parallel_layout, uneven splits), layers placed on the
stages that hold them, chunked attention, Llama 4 workloads, TPUs (issue 14)."""
import json

import pytest

from simulator.config.pipeline_layout import LayoutError, parse, split
from simulator.cost.comm import tiers_of
from simulator.cost.efficiency import DEFAULT
from simulator.cost.stage import stage_parts
from simulator.cost.step import estimate_step, pipeline_time
from simulator.engine.iteration import simulate_step
from simulator.explore.layouts import _vpp_values, split_refusal, stage_splits
from simulator.model.arch import resolve
from simulator.model.memory import stage_params
from simulator.model.params import count, dense_layer_params, embedding_params, moe_layer_params, mtp_params
from simulator.model.split import layer_ids
from simulator.simulate import stage_memory
from simulator.validation.runner import load_rows, not_expressible, scenario_of
from tests.conftest import ROOT, WORKLOADS
from simulator.cli import main
from tests.test_cli_errors import _all, _s, check, workload_file


def run_cli(capsys, *argv):
    """(exit code, stderr) of one CLI call; stdout is dropped."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err

P = "parallelism."


# ---- the layout string -------------------------------------------------------------------------

def test_megatron_example_layout_parses_as_documented():
    # Megatron-Core's docstring example: "Ettt|(tt|)*29,m|L" = [[E,t,t,t]] + [[t,t]]*29 + [[m],[L]]
    stages = parse("Ettt|(tt|)*29,m|L")
    assert stages == [list("Ettt")] + [list("tt")] * 29 + [["m"], ["L"]]
    assert parse([["embedding", "decoder"], ["Decoder", "loss"]]) == [["E", "t"], ["t", "L"]]


def test_layout_places_chunks_in_interleaved_order():
    # 16 virtual stages on PP4: rank r holds virtual stages r, r+4, r+8, r+12
    sp = split("Et*4|(t*4|)*14tmL", 4, 61, 1)
    assert sp.vpp == 4 and sp.stage_layers == (16, 16, 16, 13)
    assert sp.chunks[3] == (4, 4, 4, 1)
    ids = layer_ids(sp.chunks)
    assert ids[0][:5] == (0, 1, 2, 3, 16) and ids[1][:4] == (4, 5, 6, 7)
    assert sorted(i for r in ids for i in r) == list(range(61))


@pytest.mark.parametrize("layout,pp,why", [
    ("Et*60mL", 1, "holds 60 decoder layers"),
    ("Et*61L", 1, "holds 0 MTP modules"),
    ("t*61mLE", 1, "must start with the embedding"),
    ("Et*30|t*31m|L", 1, "MTP modules (m) must sit in the last model chunk"),
    ("Et*30|t*31|mL|", 1, "in the last stage"),
    ("Et*30m|t*31L", 2, "decoder layers (t) must all come before"),
    ("Et*20|m|t*41|L", 2, "decoder layers (t) must all come before"),
    ("Et*31|t*30|m|L", 2, "must not sit on the first pipeline rank"),
    ("Et*30|t*31|mL", 2, "not a multiple"),
    ("Ex*61mL", 1, "unknown symbol"),
    ("E(t*61mL", 1, "unbalanced"),
])
def test_bad_layouts_say_why(layout, pp, why):
    with pytest.raises(LayoutError, match=why.replace("(", r"\(").replace(")", r"\)")):
        split(layout, pp, 61, 1)


def test_layout_errors_exit_2_naming_the_key(tmp_path, capsys):
    wl = workload_file(tmp_path, "deepseek-v3.yaml", _all(_s(P + "decoder_first_pipeline_num_layers", None),
                       _s(P + "decoder_last_pipeline_num_layers", None),
                       _s(P + "pipeline_model_parallel_layout", "Et*4|(t*4|)*14tL")))
    code, err = run_cli(capsys, "run", str(wl), "--fast")
    check(code, err, 2, P + "pipeline_model_parallel_layout", "mtp_num_layers=1")
    wl = workload_file(tmp_path, "deepseek-v3.yaml", _s(P + "pipeline_model_parallel_layout", "Et*4|(t*4|)*14tmL"))
    code, err = run_cli(capsys, "run", str(wl), "--fast")
    check(code, err, 2, P + "decoder_first_pipeline_num_layers", "conflicts with pipeline_model_parallel_layout")
    wl = workload_file(tmp_path, "deepseek-v3.yaml", _all(_s(P + "decoder_first_pipeline_num_layers", None),
                       _s(P + "decoder_last_pipeline_num_layers", None),
                       _s(P + "virtual_pipeline_model_parallel_size", 2),
                       _s(P + "pipeline_model_parallel_layout", "Et*4|(t*4|)*14tmL")))
    code, err = run_cli(capsys, "run", str(wl), "--fast")
    check(code, err, 2, P + "virtual_pipeline_model_parallel_size", "16 stages on PP=16")


def test_standalone_mtp_stage_holds_the_mtp_modules(scenario):
    # Megatron-Core's example layout: the MTP module alone on virtual stage 30 (PP16 VP2: rank 14's
    # last chunk), the loss alone on rank 15's
    s = scenario("deepseek-v3", f"{P}decoder_first_pipeline_num_layers=null",
                 f"{P}decoder_last_pipeline_num_layers=null", "training.global_batch_size=16384",
                 f"{P}pipeline_schedule=null",   # the workload's zb_h1 has no virtual stages
                 f"{P}overlap_moe_expert_parallel_comm=false",
                 f"{P}pipeline_model_parallel_layout=Et*3|(tt|)*29,m|L")
    lay = s.layout
    assert lay.vpp == 2 and lay.mtp_rank == 14 and lay.chunk_layers(14) == (2, 0) and lay.stage_layers[0] == 5
    parts = stage_parts(s, DEFAULT, tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus))
    assert parts[14].tail.total > parts[15].tail.total > 0 and parts[13].tail.total == 0
    a = resolve(s.workload.model)
    mem = stage_memory(s)
    assert mem[14].weights > mem[13].weights          # the MTP module and its output-projection copy
    mtp14 = stage_params(a, 2, False, False, 16, 2, mtp=True)[0] - stage_params(a, 2, False, False, 16, 2)[0]
    assert mtp14 == mtp_params(a)[0] + a.vocab * a.hidden
    des, cf = simulate_step(s), estimate_step(s)
    assert des.step_time == pytest.approx(cf.step_time, rel=0.02)


# ---- uneven stages costed per stage (hand-computed) --------------------------------------------

def _tiny(scenario, layout, pp, **extra):
    sets = [f"{P}pipeline_model_parallel_size={pp}", f"{P}tensor_model_parallel_size=1",
            f"{P}decoder_first_pipeline_num_layers=null", f"{P}decoder_last_pipeline_num_layers=null",
            f"{P}pipeline_model_parallel_layout={layout}", "training.global_batch_size=512",
            f"{P}micro_batch_size=1", f"{P}sequence_parallel=false"]
    sets += [f"{k}={v}" for k, v in extra.items()]
    return scenario("llama3-8b", *sets, gpus=pp * 8)


def test_uneven_stages_by_hand(scenario):
    # llama3-8b (32 layers) as E+6 | 10 | 10 | 6+L: each stage's layers cost n x one layer, the first
    # adds the embedding, the last the logits; 1F1B = (m-1) x slowest + sum of stages + transfers
    s = _tiny(scenario, "Et*6|t*10|t*10|t*6L", 4)
    assert s.layout.stage_layers == (6, 10, 10, 6) and s.layout.vpp == 1
    parts = stage_parts(s, DEFAULT, tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus))
    one = parts[1].layers.total / 10
    for p, n in zip(parts, (6, 10, 10, 6)):
        assert p.layers.total == pytest.approx(n * one, rel=1e-12)
    assert parts[0].head.total > 0 and parts[3].tail.total > 0 and parts[1].head.total == 0
    totals = [p.total.total for p in parts]
    m = s.layout.num_microbatches
    pipe, _ = pipeline_time([p.total for p in parts], m, "1f1b", 1, 0.0)
    assert pipe == pytest.approx((m - 1) * max(totals) + sum(totals), rel=1e-12)
    # the slowest stage bounds the step, and the DES agrees with the closed form
    des, cf = simulate_step(s), estimate_step(s)
    assert cf.bottleneck_stage in (1, 2)
    assert des.step_time == pytest.approx(cf.step_time, rel=0.02)
    # memory follows the stage's layers: weights of stage 0 = 6 layers + embedding
    a = resolve(s.workload.model)
    mem = stage_memory(s)
    dense0, _ = stage_params(a, 6, True, False, 4)
    assert dense0 == 6 * dense_layer_params(a) + embedding_params(a)
    assert mem[0].weights == pytest.approx(2.0 * dense0, rel=1e-12)
    assert mem[1].weights > mem[0].weights


def test_interleaved_layout_chunks_reach_the_des(scenario):
    s = _tiny(scenario, "Et*2|t*6|t*6|t*2|t*2|t*6|t*6|t*2L", 4)
    assert s.layout.vpp == 2 and s.layout.chunk_layers(0) == (2, 2) and s.layout.chunk_layers(1) == (6, 6)
    des, cf = simulate_step(s), estimate_step(s)
    assert des.step_time == pytest.approx(cf.step_time, rel=0.03)


def test_leading_dense_layers_sit_on_the_first_stage(scenario):
    # DeepSeek-V3 (3 dense layers, then MoE) on PP16 with 3 / 4 x 14 / 2 layers: stage 0 holds only
    # the dense layers, so it has no routed experts and no expert all-to-all
    s = scenario("deepseek-v3", f"{P}overlap_moe_expert_parallel_comm=false")   # all-to-alls exposed
    a = resolve(s.workload.model)
    assert s.layout.stage_layers[0] == 3 and s.layout.stage_layer_ids(0) == (0, 1, 2)
    assert [a.moe_layers_among(s.layout.stage_layer_ids(i)) for i in range(3)] == [0, 4, 4]
    parts = stage_parts(s, DEFAULT, tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus))
    assert parts[0].layers.ep == 0 and parts[1].layers.ep > 0
    mem = stage_memory(s)
    shared, experts = moe_layer_params(a)
    dense1, experts1 = stage_params(a, 4, False, False, 16, 4)
    assert experts1 == 4 * experts and dense1 == 4 * shared
    dense0, experts0 = stage_params(a, 3, True, False, 16, 0)
    assert experts0 == 0 and dense0 == 3 * dense_layer_params(a) + embedding_params(a)
    # bf16 weights per GPU (TP1): stage 0 all dense, stage 1 its experts split over EP64
    assert mem[0].weights == pytest.approx(2.0 * dense0, rel=1e-12)
    assert mem[1].weights == pytest.approx(2.0 * (dense1 + experts1 / 64), rel=1e-12)


# ---- validation rows -----------------------------------------------------------------------------

def test_deepseek_v3_rows_are_expressible_with_the_recipe_layouts():
    rows = [r for r in load_rows() if "deepseek-v3" in r["run"]]
    assert len(rows) == 13        # 11, and the two 26.06 GB300 rows (s31)
    for r in rows:
        assert not_expressible(r) is None, r["run"]
        s = scenario_of(r)
        assert sum(s.layout.stage_layers) == 61 and s.layout.vpp == int(r["virtual_pp"] or 1)
    pp2 = scenario_of(next(r for r in rows if r["run"] == "mb26.02.01-deepseek-v3-256xgb300-fp8_mx"))
    assert pp2.layout.stage_layers == (32, 29)        # Et*4|(t*4|)*14tmL on PP2 VP8
    # the 26.04.01 recipes' PP8 layouts: (8, 1) without VP and (8, 2) with it hold the same layers
    for run in ("mb26.04.01-deepseek-v3-256xb300-fp8_mx", "mb26.04.01-deepseek-v3-256xb200-fp8_mx"):
        pp8 = scenario_of(next(r for r in rows if r["run"] == run))
        assert pp8.layout.stage_layers == (8,) * 7 + (5,), run


# ---- search: uneven splits --------------------------------------------------------------------

def test_uneven_split_rule():
    assert stage_splits(61, 16) == [(3, 2, (3,) + (4,) * 14 + (2,))]
    assert stage_splits(61, 2) == [(31, 30, (31, 30))]
    assert stage_splits(126, 8) == [(15, 15, (15,) + (16,) * 6 + (15,))]   # Llama 3's split kept
    assert stage_splits(32, 4) == [(None, None, (8, 8, 8, 8))]
    assert stage_splits(61, 32) == [] and "leave 1 for the first and last" in split_refusal(61, 32)
    assert "exceeds num_layers" in split_refusal(61, 64)
    # virtual stages: Llama 3's split counts embedding and loss as layers (16 slots per stage on PP8);
    # other uneven splits need VPP to divide every stage's layers
    assert _vpp_values((15,) + (16,) * 6 + (15,), True, 8, 64) == [1, 2, 4, 8, 16]
    assert _vpp_values((3,) + (4,) * 14 + (2,), True, 16, 64) == [1]
    assert _vpp_values((8, 8, 8, 8), False, 4, 64) == [1, 2, 4, 8]


def test_search_places_deepseek_v3(capsys):
    code = main(["search", str(WORKLOADS / "deepseek-v3.yaml"), "--fast", "--replicas", "2", "--top", "1",
                 "--workers", "1", "--no-progress", "--json", "--tp", "1", "--pp", "8,16", "--cp", "1",
                 "--ep", "16", "--micro-batch", "1", "--zero", "1", "--recompute", "full"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    best = json.dumps(out)
    assert "PP16(3/2)" in best or "PP8(7/6)" in best


def test_search_says_why_no_pipeline_split_fits(capsys):
    code, err = run_cli(capsys, "search", str(WORKLOADS / "deepseek-v3.yaml"), "--fast", "--replicas", "2",
                        "--workers", "1", "--no-progress", "--pp", "32", "--tp", "1")
    assert code == 3 and "no stage split: PP32" in err


# ---- chunked attention ----------------------------------------------------------------------

def test_chunked_attention_pairs_by_hand(scenario):
    # seq 8192, chunks of 2048 on 3 of every 4 layers: a chunked layer computes 4 x 2048^2/2 of the
    # 8192^2/2 causal pairs (a quarter); the NoPE layers attend the whole prefix
    s = scenario("llama4-scout", "model.attention_chunk_size=2048")
    a = resolve(s.workload.model)
    assert a.chunks[:4] == (2048, 2048, 2048, 0)
    assert a.mean_causal_keys_fraction == pytest.approx((3 * 0.25 + 1.0) / 4, rel=1e-12)
    full = resolve(scenario("llama4-scout").workload.model)   # chunk = seq: plain causal attention
    assert full.mean_causal_keys_fraction == pytest.approx(1.0, rel=1e-12)


def test_nope_interval_needs_chunks(tmp_path, capsys):
    wl = workload_file(tmp_path, "llama4-scout.yaml", _s("model.attention_chunk_size", None))
    code, err = run_cli(capsys, "run", str(wl), "--fast")
    check(code, err, 2, "model.nope_layer_interval", "attention_chunk_size")


# ---- Llama 4 ------------------------------------------------------------------------------------

def _vision_encoder_params() -> int:
    """The Llama 4 vision encoder, from NeMo's Llama4VisionConfig (NVIDIA/NeMo
    nemo/collections/vlm/llama4/model/vision.py @ 0278f41e): 34 layers of width 1408 with biases,
    non-gated GELU MLP 5632, LayerNorms; 14 x 14 patches of 336 x 336 images (576 + a class token),
    a pixel-shuffle MLP adapter (1408 / 0.5^2 = 5632 -> 4096 -> 4096, no bias), then the 4096 -> 5120
    projector into the language model."""
    h, f, n = 1408, 5632, 34
    layer = (h * 3 * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h
    patches = (336 // 14) ** 2 + 1
    return n * layer + 3 * 14 * 14 * h + patches * h + h + 2 * 2 * h + 5632 * 4096 + 4096 * 4096 + 4096 * 5120


@pytest.mark.parametrize("name,total", [
    ("llama4-scout", 109e9),       # Llama 4 model card: 109B total, 17B active
    ("llama4-maverick", 400e9),    # 400B total, 17B active
])
def test_llama4_parameter_counts(scenario, name, total):
    pc = count(resolve(scenario(name).workload.model))
    # the published totals count the (not modelled) vision encoder too
    assert pc.total + _vision_encoder_params() == pytest.approx(total, rel=0.01)
    # 17B active, rounded to the billion, counts the embedding and the output layer (text model)
    assert pc.active == pytest.approx(17e9, rel=0.015)


def test_maverick_alternates_dense_and_moe_layers(scenario):
    a = resolve(scenario("llama4-maverick").workload.model)
    assert a.num_moe_layers == 24 and not a.is_moe_layer(0) and a.is_moe_layer(1)


@pytest.mark.parametrize("name", ["llama4-scout", "llama4-maverick"])
def test_llama4_runs_searches_and_prices_levers(capsys, name):
    wl = str(WORKLOADS / f"{name}.yaml")
    code, err = run_cli(capsys, "run", wl, "--fast", "--replicas", "2")
    assert code == 0, err
    code, err = run_cli(capsys, "search", wl, "--fast", "--replicas", "2", "--top", "1", "--workers", "1",
                        "--no-progress", "--tp", "4", "--pp", "1", "--cp", "1", "--micro-batch", "1",
                        "--zero", "1", "--recompute", "selective")
    assert code == 0, err
    code, err = run_cli(capsys, "levers", wl, "--fast", "--replicas", "2", "--only", "fp8,optimizer")
    assert code == 0, err


# ---- TPUs ---------------------------------------------------------------------------------------

def test_tpu_v5p_torus_runs_and_refuses_block_formats(capsys):
    tpu = str(ROOT / "topologies" / "tpu-v5p.yaml")
    wl = str(WORKLOADS / "llama3-8b.yaml")
    code, err = run_cli(capsys, "run", wl, "--cluster", tpu, "--gpus", "64", "--fast", "--replicas", "2")
    assert code == 0, err
    code, err = run_cli(capsys, "run", wl, "--cluster", tpu, "--gpus", "64", "--fast",
                        "--set", "training.precision=nvfp4")
    check(code, err, 2, "training.precision", "TPU v5p", "NVFP4", "bf16")
    # no FP8 units on v5p (its published FP8 figure is the bf16 one): fp8 is refused, not costed slower
    code, err = run_cli(capsys, "run", wl, "--cluster", tpu, "--gpus", "64", "--fast",
                        "--set", "training.precision=fp8")
    check(code, err, 2, "training.precision", "TPU v5p", "bf16")
