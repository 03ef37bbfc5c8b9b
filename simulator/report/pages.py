"""The HTML report of each command: what goes on the page of `run` and of each study (see html.py
for the page itself). Each function takes what the command computed and returns an html.Report."""
from __future__ import annotations

from simulator.report.html import STUDY_COLUMNS, Report, Table, input_files, rows_table


def _engine(fast: bool, replicas: int | None = None) -> str:
    step = "closed-form step" if fast else "discrete-event step"
    return step + (f" + {replicas} campaign replicas" if replicas else "")


def run_page(result, scenario, power, fast: bool, replicas: int, text: str) -> Report:
    from simulator.report.plots import run_figures

    r = result
    rep = Report(title=f"{r.name} on {r.num_gpus:,} x {r.gpu}",
                 question="What will this training run cost: time, energy, money?",
                 engine=_engine(fast, replicas), text=text, assumptions=dict(r.assumptions),
                 inputs=input_files(scenario.workload_source, scenario.cluster_source))
    data = r.to_json()
    if data.get("time_to_train_days_p50") is not None and data.get("cost_usd") is not None:
        from simulator.report.style import money

        rep.answer = (f"{data['time_to_train_days_p50']:.1f} days at P50 ({data['time_to_train_days_p90']:.1f} at "
                      f"P90), {data['energy_mwh']:,.0f} MWh, {money(data['cost_usd'])}, layout {r.layout}, "
                      f"MFU {r.mfu:.1%}.")
    else:
        rep.answer = f"step {r.step_time_s:.3g} s, MFU {r.mfu:.1%}, layout {r.layout}."
    keys = (("layout", "layout"), ("step_time_s", "step time (s)"), ("mfu", "MFU"), ("tokens_per_s", "tokens/s"),
            ("memory_per_gpu_gib", "memory per GPU (GiB)"), ("ideal_time_to_train_days", "failure-free days"),
            ("time_to_train_days_p50", "days to train P50"), ("time_to_train_days_p90", "days to train P90"),
            ("ettr", "ETTR"), ("gpu_hours", "GPU-hours"), ("energy_mwh", "energy (MWh)"),
            ("co2_tonnes", "emissions (tCO2e)"), ("cost_usd", "cost (USD)"))
    rep.tables.append(Table("Key numbers", ("quantity", "value"),
                            [(name, _fmt(data.get(k))) for k, name in keys if data.get(k) is not None]))
    step = r.step_time_s
    rep.tables.append(Table("Where the step goes", ("part", "seconds", "% of step"),
                            [(k.replace("_", " "), f"{v:.4g}", f"{v / step:.1%}") for k, v in r.breakdown.items()
                             if v > 0]))
    for key, fig in run_figures(r, power).items():
        rep.add_figure(fig, _RUN_CAPTIONS.get(key, key))
    return rep


_RUN_CAPTIONS = {
    "step_power": "Facility power over one simulated step (compute, communication and bubbles draw differently).",
    "campaign_timeline": "One campaign replica: training, checkpoints, failures and restarts.",
    "time_to_train": "Time to train over the Monte Carlo replicas, against the failure-free time.",
    "campaign_power": "Facility power over one campaign replica, averaged in time bins; failures and restarts marked.",
}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def study_page(kind: str, question: str, name: str, rows, text: str, fig, caption: str, fast: bool,
               replicas: int, scenario=None, sources=(), answer: str = "", columns=STUDY_COLUMNS) -> Report:
    """A study's page: its chart, its rows as a table, the terminal text, inputs and assumptions."""
    rep = Report(title=f"trainsim {kind}: {name}", question=question, engine=_engine(fast, replicas),
                 answer=answer, text=text, inputs=input_files(*sources),
                 assumptions=dict(scenario.assumptions) if scenario is not None else {})
    if fig is not None:
        rep.add_figure(fig, caption)
    if rows:
        rep.tables.append(rows_table(rows, "Every case", columns))
    return rep
