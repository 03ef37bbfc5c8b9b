"""The 26.04.01 Megatron-Bridge rows: a later release held out of the fit (an out-of-time check)."""
from __future__ import annotations

from simulator.cost.efficiency import DEFAULT
from simulator.validation.fit import fit_set, leave_one_source_out, moe_set
from simulator.validation.runner import CHECK_ONLY_SOURCES, cases, load_rows, workload_of

HELD = "megatron-bridge-26.04.01"


def _layout(row: dict) -> tuple:
    w = workload_of(row)
    p = w["parallelism"]
    model = row["run"].split("-", 1)[1].rsplit("-", 2)[0]      # mb26.04.01-<model>-<n>x<gpu>-<precision>
    return (model, row["gpu"], w["training"]["precision"], w["training"]["global_batch_size"],
            p["micro_batch_size"], p["tensor_model_parallel_size"], p["pipeline_model_parallel_size"],
            p.get("virtual_pipeline_model_parallel_size"), p.get("context_parallel_size", 1),
            p.get("expert_model_parallel_size", 1))


def test_the_held_out_rows_print_layouts_no_fitted_row_has():
    rows = load_rows()
    held = [r for r in rows if r["source"] == HELD]
    assert len(held) == 9 and all(r["release"] == "26.04.01" for r in held)
    fitted = {_layout(r) for r in rows if r["source"] == "megatron-bridge"}
    for r in held:
        assert _layout(r) not in fitted, r["run"]
    # the table's plain "FP8" is the release's current-scaling recipe, as for 26.02.01
    assert {workload_of(r)["training"]["precision"] for r in held} == {"fp8_cs", "fp8_mx"}


def test_the_held_out_release_is_never_fitted_and_keeps_the_fit():
    assert HELD in CHECK_ONLY_SOURCES
    cs, skipped = cases(load_rows())
    assert not skipped
    held = [c for c in cs if c.source == HELD]
    assert len(held) == 9 and all(c.check_only for c in held)
    assert not any(c.source == HELD for c in fit_set(cs) + moe_set(cs))
    # leave-one-source-out has nothing to leave out for it: its rows are predicted with the fit itself
    out = {h.source: h for h in leave_one_source_out([c for c in cs if c.source in (HELD, "nemo-24.07")])}
    assert out[HELD].efficiency == DEFAULT
    assert [r.predicted for r in out[HELD].rows] == [c.predict(DEFAULT).predicted for c in held]


LATER = "megatron-bridge-26.06"


def _model(row: dict) -> str:
    return next(m for m in ("deepseek-v3", "gpt-oss-120b", "qwen3", "llama3") if m in row["run"])


def test_the_26_06_rows_are_new_layouts_held_out_like_26_04_01():
    """NeMo 26.06 (Megatron-Bridge v0.5.0): DeepSeek-V3 on GB300 in MXFP8 at MBS 1 (PP2 VP8 EP32)
    and GPT-OSS-120B in MXFP8, with the recipes' FP8 attention and fused grouped MLP where they set
    them (not on B300). No earlier table printed these layouts; never fitted on."""
    rows = load_rows()
    later = [r for r in rows if r["source"] == LATER]
    assert len(later) == 5 and all(r["release"] == "26.06" for r in later)
    earlier = {(_model(r),) + _layout(r)[1:] for r in rows if r["source"] in ("megatron-bridge", HELD)}
    for r in later:
        assert (_model(r),) + _layout(r)[1:] not in earlier, r["run"]
    fused = {r["run"] for r in later if r["moe_fused_grouped_mlp"] == "true" and r["fp8_attention"] == "true"}
    assert fused == {r["run"] for r in later if "xb300" not in r["run"]}
    assert LATER in CHECK_ONLY_SOURCES
    cs, _ = cases(rows)
    assert not any(c.source == LATER for c in fit_set(cs) + moe_set(cs))
