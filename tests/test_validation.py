"""The published runs: accuracy of the fitted model (all rows reported, bounds on the good ones)."""
import pytest

from simulator.validation.runner import cases, load_rows, mape, narayanan_flops, run_all, scenario_of
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token, recompute_flops_per_token
from simulator.validation.rows import MODERN_SOURCES


ERA_2021 = ("narayanan2021-t1", "narayanan2021-t2", "megatron-core-h100", "bigscience-tr11")


@pytest.fixture(scope="module")
def all_rows():
    return run_all()


@pytest.fixture(scope="module")
def rows(all_rows):
    return [r for r in all_rows if r.source in ERA_2021]


def test_every_published_row_is_predicted_or_says_why(all_rows, rows):
    ok, skipped = cases()
    assert len(ok) + len(skipped) == len(load_rows()) >= 32 + 72
    assert len(rows) == 32                      # every 2021-era row is expressible
    assert len(all_rows) == len(ok) > 32        # and some modern ones
    assert all(r.predicted > 0 for r in all_rows)
    assert all(s.reason and s.source in MODERN_SOURCES for s in skipped)


def test_overall_error(rows):
    # 6.4 % (6.7 % when NCCL's network hop was first pinned rather than fitted on the ZeRO-3 rows,
    # 6.3 % before that, 5.8 % when fitted on these 32 alone): docs/validation.md, "Before and after"
    assert mape(rows) < 0.07


def test_megatron_rows_each_within_ten_percent(rows):
    good = [r for r in rows if "zero3" not in r.run and r.source != "megatron-core-h100"]
    # worst: BLOOM's single row (docs/validation.md explains it)
    assert max(abs(r.error) for r in good) < 0.12
    assert mape(good) < 0.04
    # the Megatron-Core H100 table is a looser check (precision, recompute, micro batch unstated);
    # its bf16 rows now reduce fp32 gradients (Megatron's default), which costs the DP-heavy rows;
    # worst the 32B row, -20.2 % since s30 hides each overlapped TP collective behind its own GEMM
    # only (-19.6 % before; docs/validation.md explains the row)
    loose = [r for r in rows if r.source == "megatron-core-h100"]
    assert max(abs(r.error) for r in loose) < 0.21


def test_zero3_trend_is_reproduced(rows):
    """ZeRO-3 without model parallelism loses throughput as DP grows (Narayanan 2021, Table 2)."""
    z = {r.run: r.predicted for r in rows if "zero3" in r.run}
    assert z["gpt-174.6b-zero3-384"] > z["gpt-174.6b-zero3-768"] > z["gpt-174.6b-zero3-1536"]
    assert z["gpt-529.6b-zero3-640"] > z["gpt-529.6b-zero3-1120"] > z["gpt-529.6b-zero3-2240"]
    # with NCCL's ring latency and 2021 DeepSpeed's per-fetch costs the 175B rows follow the table
    # (+6, +8, -8 % since s31's LL / LL128 protocols; +5, +6, -12 % before; -1, -15, -41 % when every
    # ring step paid a network hop); the 530B rows stay ~25-30 % fast at every scale (docs/validation.md, s29)
    err = {r.run: r.error for r in rows if "zero3" in r.run}
    assert all(abs(e) < 0.15 for run, e in err.items() if "174.6b" in run)
    assert all(abs(e) < 0.30 for e in err.values())


def test_metric_formula_is_the_papers():
    row = load_rows()[0]
    s = scenario_of(row)
    a = resolve(s.workload.model)
    tokens = s.workload.training.global_batch_size * a.seq
    ours = (model_flops_per_token(a) + recompute_flops_per_token(a, "full")) * tokens
    assert narayanan_flops(s) == pytest.approx(ours, rel=1e-12)


def test_whole_runs_are_predicted_end_to_end():
    from simulator.validation.runner import whole_run_rows

    rows = whole_run_rows(replicas=4)
    assert {r.metric.split(" ")[0] for r in rows} == {"gpu_hours", "gpu_tdp_energy"}
    assert {r.run for r in rows} == {"bloom-176b", "llama3-405b", "deepseek-v3"}
    # reported in docs/validation.md: BLOOM -7 %, Llama 3 405B -1 %, DeepSeek-V3 +24 % (full
    # recomputation stands in for DeepSeek's memory savers: 10.7 % of its step)
    bound = {"bloom-176b": 0.10, "llama3-405b": 0.05, "deepseek-v3": 0.30}
    for r in rows:
        assert r.predicted > 0 and abs(r.error) < bound[r.run], r


def test_modern_rows_map_their_features():
    from simulator.validation.runner import workload_of

    by_run = {r["run"]: r for r in load_rows()}
    w = workload_of(by_run["mb25.11-deepseek-v3-256xgb300-bf16"])
    assert w["model"]["multi_latent_attention"] == {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
                                                    "qk_rope_head_dim": 64, "v_head_dim": 128}
    assert w["model"]["moe"]["first_k_dense_replace"] == 3
    assert w["model"]["moe"]["moe_shared_expert_intermediate_size"] == 2048
    w = workload_of(by_run["mb25.11-gpt-oss-120b-64xgb300-bf16"])
    assert (w["model"]["sliding_window"], w["model"]["window_attn_skip_freq"]) == (128, 2)
    assert w["model"]["softmax_type"] == "learnable" and w["model"]["add_bias_linear"] is True
    w = workload_of(by_run["mb25.11-llama3.1-405b-256xgb300-fp8_cs"])
    p = w["parallelism"]
    assert (p["decoder_first_pipeline_num_layers"], p["decoder_last_pipeline_num_layers"]) == (15, 15)
    assert p["distributed_optimizer"] and p["tp_comm_overlap"] and w["training"]["precision"] == "fp8_cs"
    assert w["model"]["position_embedding_type"] == "rope" and w["model"]["add_bias_linear"] is False


def test_gb300_70b_2602_rows_take_the_recipe_layout():
    """The 26.02.01 table prints the GB300 Llama-3 70B MXFP8 / NVFP4 rows at MBS 2 without virtual
    stages; the v0.3.1 recipe and the 26.02 / 26.04 rows say PP4 x VP5 at MBS 1 (data/SOURCES.md).
    Interleaved 1F1B with 16 microbatches: bubble (p-1)/(v*m + p-1) = 3/83 of the pipeline time."""
    from simulator.cost.step import estimate_step
    from simulator.validation.runner import workload_of

    by_run = {r["run"]: r for r in load_rows()}
    for run in ("mb26.02.01-llama3-70b-64xgb300-fp8_mx", "mb26.02.01-llama3-70b-64xgb300-nvfp4"):
        p = workload_of(by_run[run])["parallelism"]
        assert (p["tensor_model_parallel_size"], p["pipeline_model_parallel_size"],
                p["virtual_pipeline_model_parallel_size"], p["data_parallel_size"], p["micro_batch_size"]) == (1, 4, 5, 16, 1)
        est = estimate_step(scenario_of(by_run[run]))
        assert 0.02 < est.breakdown["bubble"] / est.step_time < 3 / 83 + 0.005


def test_unknown_feature_is_named_not_crashed():
    from simulator.validation.runner import not_expressible

    row = dict(next(r for r in load_rows() if r["run"] == "24.07-llama3-8b-8xh100-sxm-fp8"))
    assert not_expressible(row) is None
    row["attention"] = "gqa; sliding_window 4096 on every other layer"
    reason = not_expressible(row)
    from simulator.config.workload import ModelConfig

    if "sliding_window" not in ModelConfig.model_fields:
        assert reason.startswith("sliding-window attention")
    row["cluster_hint"] = "a system nobody bundles"
    assert "cluster_hint" in not_expressible(row) or reason


class _Synthetic:
    """A published row whose prediction is k / eff.gemm: source A ran at gemm 0.8, source B at 0.9."""

    def __init__(self, source, k, true_gemm):
        self.row = {"source": source, "run": f"{source}-{k}", "value": str(k / true_gemm)}
        self.k = k

    @property
    def source(self):
        return self.row["source"]

    def predict(self, eff, engine="analytical"):
        from simulator.validation.runner import Row

        return Row(self.source, self.row["run"], 8, "m", float(self.row["value"]), self.k / eff.gemm, 1.0)


def test_leave_one_source_out_refits_without_the_source():
    """Hand-computed: A's rows need gemm 0.8, B's 0.9. Left out, A is predicted by B's fit (0.9):
    k/0.9 against k/0.8 -> error 0.8/0.9 - 1 = -11.1 %; B by A's fit: 0.9/0.8 - 1 = +12.5 %."""
    from simulator.cost.efficiency import DEFAULT
    from simulator.validation.fit import fit, leave_one_source_out

    synth = [_Synthetic("A", k, 0.8) for k in (1.0, 2.0, 3.0)] + [_Synthetic("B", k, 0.9) for k in (1.0, 5.0)]
    only_a, _ = fit(synth[:3], DEFAULT.with_(gemm=0.7), names=("gemm",), rounds=6)
    assert only_a.gemm == pytest.approx(0.8, abs=0.004)
    held = {h.source: h for h in leave_one_source_out(synth, DEFAULT.with_(gemm=0.85), names=("gemm",),
                                                      loso_rounds=6)}
    assert held["A"].efficiency.gemm == pytest.approx(0.9, abs=0.004)
    assert held["B"].efficiency.gemm == pytest.approx(0.8, abs=0.004)
    assert all(r.error == pytest.approx(0.8 / 0.9 - 1, abs=0.006) for r in held["A"].rows)
    assert all(r.error == pytest.approx(0.9 / 0.8 - 1, abs=0.006) for r in held["B"].rows)


def test_moe_rows_take_their_recipes_settings():
    """data/SOURCES.md: the GPT-OSS 25.11 DGX-B200 row ran the v0.2.0 recipe's EP64 (its experts are
    then unreplicated: no expert gradients cross InfiniBand, while the 26.02.01 EP8 row reduces 14 B
    expert parameters over 8 nodes), the H100 row micro batch 1; the flex dispatcher only where the
    release's apply_flex_dispatcher_backend accepts the preset's backend (v0.2.0: GB200 / GB300)."""
    from simulator.cost.step import estimate_step
    from simulator.validation.runner import workload_of

    by_run = {r["run"]: r for r in load_rows()}
    p = workload_of(by_run["mb25.11-gpt-oss-120b-64xb200-bf16"])["parallelism"]
    assert (p["expert_model_parallel_size"], p["data_parallel_size"]) == (64, 64)
    ep64 = estimate_step(scenario_of(by_run["mb25.11-gpt-oss-120b-64xb200-bf16"])).breakdown
    ep8 = estimate_step(scenario_of(by_run["mb26.02.01-gpt-oss-120b-64xb200-bf16"])).breakdown
    assert ep64["dp_comm"] < 0.05 < 0.1 < ep8["dp_comm"]
    # per sequence of the global batch (512 and 1280): EP64 sends 56 of 63 peers' tokens over InfiniBand,
    # EP8 stays on NVLink
    assert ep64["ep_comm"] / 512 > 5 * ep8["ep_comm"] / 1280
    assert workload_of(by_run["mb25.11-gpt-oss-120b-64xh100-sxm-bf16"])["parallelism"]["micro_batch_size"] == 1
    for run, row in by_run.items():
        if row.get("moe_dispatcher") == "flex" and row["release"] == "25.11":
            assert row["gpu"] in ("gb200", "gb300"), run


def test_summary_splits_the_fitted_rows_into_dense_and_moe(all_rows):
    from simulator.validation.report import Validation, format_validation
    from simulator.validation.runner import CHECK_ONLY_SOURCES

    v = Validation(all_rows, {}, {}, [], [])
    by = {s["source"]: s for s in v.summary()}
    fitted = [r for r in all_rows if r.source not in CHECK_ONLY_SOURCES]
    moe = [r for r in fitted if resolve(scenario_of(_row(r)).workload.model).is_moe]
    assert by["MoE rows"]["rows"] == len(moe) > 0
    assert by["dense rows"]["rows"] + by["MoE rows"]["rows"] == by["fitted sources"]["rows"]
    assert by["MoE rows"]["in_sample_mape"] == pytest.approx(mape(moe))
    assert by["MoE rows"]["loso_mape"] is None           # nothing held out in this Validation
    text = format_validation(v)
    assert "MoE rows" in text and "dense rows" in text


def _row(r):
    return next(x for x in load_rows() if x["source"] == r.source and x["run"] == r.run)
