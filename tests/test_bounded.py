"""Issue 16: no hostile or absurd input may hang trainsim, exhaust the machine or lose a result.

One section per class of problem the review found; each test feeds a representative of the class
through the real CLI (in-process ``simulator.cli.main``, or a subprocess where a process boundary
is the point) and checks the exit code (0 ok, 2 bad input, 3 infeasible), the message, and that
it came back quickly. The campaign-simulation bounds (failures outpacing recovery) are tested in
test_campaign.py.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from simulator.cli import main
from simulator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
W8 = str(ROOT / "workloads" / "llama3-8b.yaml")
CLUSTER = ROOT / "topologies" / "dgx-h100-superpod.yaml"
QUICK = ["--fast", "--replicas", "1"]


def cli(capsys, *argv, code: int | None = None, seconds: float = 20.0) -> str:
    """Run the CLI in-process; return stderr. Checks the exit code, the time and no traceback."""
    t = time.perf_counter()
    rc = main([str(a) for a in argv])
    took = time.perf_counter() - t
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    if code is not None:
        assert rc == code, f"exit {rc}, expected {code}:\n{err}"
    assert took < seconds, f"took {took:.1f} s"
    return err


def workload(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(Path(W8).read_text())
    data["cluster"] = str(CLUSTER)
    data.update(changes)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


BOMB = "\n".join(
    [f'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)])


# --------------------------------------------------------------------------- unbounded output

def test_an_alias_bomb_in_a_file_is_refused_quickly(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB + "\nname: *a8\n")
    err = cli(capsys, "run", path, *QUICK, code=2, seconds=5)
    assert "too big" in err and "aliases" in err and len(err) < 1000


def test_an_alias_bomb_in_a_set_is_refused_quickly(tmp_path, capsys):
    flow = "[" + ", ".join(line.split(": ", 1)[1] for line in BOMB.splitlines()) + "]"
    err = cli(capsys, "run", W8, *QUICK, "--set", f"description={flow}", code=2, seconds=5)
    assert "too big" in err and len(err) < 2000


def test_every_echoed_value_is_capped(tmp_path, capsys):
    huge = "x" * 200_000
    err = cli(capsys, "run", W8, *QUICK, "--set", f"cluster.node.nic_bandwidth={huge[:9000]}", code=2)
    assert len(err) < 2000
    path = workload(tmp_path, name=[list(range(50))] * 50, description={f"k{i}": huge[:5000] for i in range(50)})
    err = cli(capsys, "run", path, *QUICK, code=2)
    assert len(err) < 2000 and "..." in err


def test_a_thousand_unknown_keys_list_a_few_and_count_the_rest(tmp_path, capsys):
    path = workload(tmp_path, **{f"unknown_{i}": i for i in range(1000)})
    err = cli(capsys, "run", path, *QUICK, code=2)
    assert "more problems" in err and err.count("\n") < 40


# --------------------------------------------------------------------------- unbounded reading

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def test_non_regular_inputs_are_refused_without_reading(tmp_path, fifo, capsys):
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:          # a 50 MB (sparse) file
        fh.truncate(50 << 20)
    for bad in (fifo, "/dev/zero", tmp_path, big):
        err = cli(capsys, "run", bad, *QUICK, code=2, seconds=5)
        assert str(bad) in err
        cli(capsys, "run", W8, *QUICK, "--cluster", bad, code=2, seconds=5)
        cli(capsys, "topology", bad, code=2, seconds=5)
        cli(capsys, "compare", W8, *QUICK, "--workers", "1", "--no-progress", "--vary",
            f"cluster={CLUSTER},{bad}", code=2, seconds=10)
    assert "regular file" in cli(capsys, "run", fifo, *QUICK, code=2)
    assert "too big" in cli(capsys, "run", big, *QUICK, code=2)


def test_a_carbon_profile_that_is_a_folder_or_a_pipe(tmp_path, fifo, capsys):
    for bad in (tmp_path, fifo):
        err = cli(capsys, "run", W8, *QUICK, "--set", f"cluster.prices.carbon_intensity_profile={bad}", code=2,
                  seconds=5)
        assert "carbon_intensity_profile" in err


@pytest.mark.parametrize("text, needle", [
    ("[1, 2]: 3\n", "plain value"),
    ("? {a: 1}\n: 3\n", "plain value"),
    ("[" * 3000 + "]" * 3000 + "\n", "nested"),
    ("name: x\nnum_gpus: " + "9" * 5000 + "\n", "cannot be read"),
    ("a: &x [*x]\n", None),        # an alias inside its own anchor is a YAML error
    (b"\xff\xfe\x00name".decode("latin-1"), None),
])
def test_malformed_yaml_is_exit_2(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="latin-1" if needle is None else "utf-8")
    err = cli(capsys, "run", path, *QUICK, code=2, seconds=5)
    if needle:
        assert needle in err


# --------------------------------------------------------------------------- unbounded loops in helpers

def test_divisor_hint_is_fast_for_a_huge_prime():
    from simulator.config.layout import _divisors

    t = time.perf_counter()
    assert _divisors(999_999_937) == "1, 999999937"
    assert _divisors(36) == "1, 2, 3, 4, 6, 9, 12, 18, 36"
    assert time.perf_counter() - t < 0.5


def test_a_pipeline_that_does_not_divide_a_huge_layer_count(capsys):
    err = cli(capsys, "run", W8, *QUICK, "--set", "model.num_layers=99991",
              "--set", "parallelism.pipeline_model_parallel_size=2", code=2, seconds=10)
    assert "99991 (1, 99991)" in err


def test_a_layer_count_beyond_the_limit_is_refused_at_once(capsys):
    """model.num_layers above limits.MAX_LAYERS: exit 2 before any per-layer structure is built (at
    10^9 layers those took tens of GB)."""
    err = cli(capsys, "run", W8, *QUICK, "--set", "model.num_layers=1000000000", code=2, seconds=10)
    assert "model.num_layers" in err and "100000" in err


@pytest.mark.parametrize("key, value", [
    ("cluster.fabric.switch_radix", 10**100), ("cluster.fabric.switch_radix", 100_000),
    ("cluster.reliability.spare_nodes", 10**100), ("cluster.num_nodes", 10**12), ("model.num_layers", 10**30),
    ("training.global_batch_size", 10**18),
])
def test_size_like_keys_have_an_upper_bound(capsys, key, value):
    err = cli(capsys, "run", W8, *QUICK, "--set", f"{key}={value}", code=2, seconds=10)
    assert key.rsplit(".", 1)[-1] in err and "less than or equal" in err


# --------------------------------------------------------------------------- unbounded executors

def test_workers_and_replicas_are_bounded(capsys):
    err = cli(capsys, "run", W8, "--fast", "--workers", "100000", code=2)
    assert "--workers" in err and "CPUs" in err
    err = cli(capsys, "sweep", W8, "--grid", "num_gpus=256", "--fast", "--workers", "100000", code=2)
    assert "--workers" in err
    for command in (["run", W8], ["sweep", W8, "--grid", "num_gpus=256"]):
        err = cli(capsys, *command, "--fast", "--replicas", "10000000", code=2)
        assert "--replicas" in err and "100,000" in err
    assert "10**30" not in cli(capsys, "run", W8, "--gpus", str(10**30), code=2)


@pytest.fixture
def silent_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


@pytest.fixture
def http_server():
    """Accepts, reads, answers like a web server, then keeps the connection open."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    held = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()
    for c in held:
        c.close()


def test_a_scheduler_that_never_answers_does_not_hang(silent_server, capsys):
    from simulator.explore.executors import executor_for

    t = time.perf_counter()
    with pytest.raises(ConfigError, match="no answer"):
        with executor_for(scheduler=silent_server, connect_timeout_s=0.5):
            pass
    assert time.perf_counter() - t < 5


def test_a_scheduler_address_that_speaks_http_does_not_hang(http_server):
    from simulator.explore.executors import executor_for

    t = time.perf_counter()
    with pytest.raises(ConfigError, match="--scheduler"):
        with executor_for(scheduler=http_server, connect_timeout_s=0.5):
            pass
    assert time.perf_counter() - t < 10


@pytest.mark.parametrize("address", ["not-an-address", "tcp://", "tcp://host:notaport", "tcp://h:99999999"])
def test_a_scheduler_that_is_not_an_address(capsys, address):
    err = cli(capsys, "run", W8, *QUICK, "--scheduler", address, code=2, seconds=10)
    assert "--scheduler" in err


# --------------------------------------------------------------------------- orphans

ORPHAN_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from simulator.explore.executors import executor_for
    with executor_for(2) as pool:
        pids = [pool.submit(os.getpid) for _ in range(8)]
        print(" ".join(str(p) for p in sorted({f.result() for f in pids})), flush=True)
        work = [pool.submit(time.sleep, 60) for _ in range(2)]
        time.sleep(60)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:        # a zombie (dead, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_pool_workers_die_with_a_killed_parent():
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers and all(_alive(p) for p in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "pool workers outlived their parent"
        assert proc.stdout.read() == ""         # no process holds the pipe open: EOF at once
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------- data loss

def test_csv_rows_are_one_line_each_and_a_cut_row_resumes(tmp_path, capsys):
    from simulator.explore.results import ResultsFile, read_rows

    out = tmp_path / "s.csv"
    f = ResultsFile(out, ("case", "status", "error"))
    f.start(resume=False)
    rows = [{"case": "a", "status": "invalid", "error": "line one\nline two, \"quoted\"\r\\n literal"},
            {"case": "b", "status": "ok", "error": None}]
    for r in rows:
        f.append(r)
    lines = out.read_text().split("\n")
    assert len(lines) == 4 and lines[-1] == ""
    assert read_rows(out)[0]["error"] == rows[0]["error"]
    # a study killed mid-record: every cut point resumes with the complete rows before it
    text = out.read_text()
    for cut in range(len(lines[0]) + 1, len(text)):
        out.write_text(text[:cut])
        got = read_rows(out)
        assert [r["case"] for r in got] == ["a", "b"][:len(got)]


def test_a_sweep_cut_inside_an_error_row_resumes(tmp_path, capsys):
    out = tmp_path / "s.csv"
    argv = ["sweep", W8, "--grid", "parallelism.pipeline_model_parallel_size=3,1,2", "--out", out,
            *QUICK, "--workers", "1", "--no-progress"]
    cli(capsys, *argv, code=0)
    full = out.read_text()
    cut = full.index("\n", full.index("\n") + 1) - 10      # inside the first (invalid) data row
    out.write_text(full[:cut])
    cli(capsys, *argv, "--resume", code=0)
    assert out.read_text() == full


def test_a_corrupt_study_record_is_exit_2(tmp_path, capsys):
    out = tmp_path / "s.csv"
    argv = ["sweep", W8, "--grid", "num_gpus=256,512", "--out", out, *QUICK, "--workers", "1", "--no-progress"]
    cli(capsys, *argv, code=0)
    for junk in ("[1, 2]", "{not json", "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), "null"):
        Path(f"{out}.study.json").write_text(junk, encoding="latin-1")
        assert "cannot resume" in cli(capsys, *argv, "--resume", code=2)


def test_outputs_are_never_overwritten_without_force(tmp_path, capsys):
    existing = tmp_path / "mine.yaml"
    existing.write_text("precious\n")
    err = cli(capsys, "search", W8, "--gpus", "8", *QUICK, "--top", "1", "--workers", "1", "--no-progress",
              "--write", existing, code=2)
    assert "--write" in err and "--force" in err and existing.read_text() == "precious\n"
    png = tmp_path / "f.png"
    png.write_text("precious\n")
    cli(capsys, "topology", CLUSTER, "--nodes", "4", "--draw", png, code=2)
    cli(capsys, "run", W8, "--replicas", "1", "--trace", existing, code=2)
    assert existing.read_text() == "precious\n" and png.read_text() == "precious\n"
    cli(capsys, "topology", CLUSTER, "--nodes", "4", "--draw", png, "--force", code=0)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_bug_in_one_case_is_an_error_row(tmp_path, capsys, monkeypatch):
    import simulator

    real = simulator.simulate

    def flaky(s, **kw):
        if s.layout.micro_batch_size == 2:
            raise ZeroDivisionError("a planted bug")
        return real(s, **kw)

    monkeypatch.setattr(simulator, "simulate", flaky)
    out = tmp_path / "s.csv"
    cli(capsys, "sweep", W8, "--grid", "parallelism.micro_batch_size=2,1", *QUICK, "--workers", "1",
        "--no-progress", "--out", out, code=0)
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["error", "ok"]
    assert "ZeroDivisionError" in rows[0]["error"]


def test_invalid_rows_keep_their_axis_values(capsys):
    main(["sweep", W8, "--grid", "num_gpus=7,512", *QUICK, "--workers", "1", "--no-progress", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [(str(r["num_gpus"]), r["status"]) for r in rows] == [("7", "invalid"), ("512", "ok")]


# --------------------------------------------------------------------------- wrong exit codes

def test_exit_codes_of_bad_inputs(tmp_path, capsys):
    assert main(["run", W8, *QUICK, "--set", "cluster.prices.gpu_hour=0 USD"]) == 0
    assert "$ 0" in capsys.readouterr().out
    assert "--trace" in cli(capsys, "run", W8, "--replicas", "1", "--trace", "/dev/full", code=2)
    assert "--draw" in cli(capsys, "topology", CLUSTER, "--draw", "/dev/full", code=2)
    cli(capsys, "topology", CLUSTER, "--nodes", "4", "--draw", tmp_path / "new" / "f.png", code=0)
    gpu = ("{name: x, peak_flops: {bf16: 1e-300 FLOP/s}, hbm_capacity: 80 GiB, hbm_bandwidth: 1e-300 B/s, "
           "tdp: 700 W, idle_power: 100 W}")
    assert "step time" in cli(capsys, "run", W8, *QUICK, "--set", f"cluster.gpu={gpu}", code=2)


def test_plain_float_fields_read_yaml_1_2_numbers(tmp_path, capsys):
    from simulator.config.safe_yaml import safe_load

    assert safe_load("a: 1e0\nb: -2.5E-3\nc: 3\nd: 1.5\ne: 2024-01-01\nf: '1e0'\n")["a"] == 1.0
    assert safe_load("b: -2.5E-3")["b"] == -2.5e-3 and safe_load("c: 3")["c"] == 3
    assert safe_load("f: '1e0'")["f"] == "1e0"
    assert main(["run", W8, *QUICK, "--json", "--set", "cluster.power.pue=1e0"]) == 0
    assert json.loads(capsys.readouterr().out)["assumptions"] is not None


# --------------------------------------------------------------------------- silent nonsense

@pytest.mark.parametrize("sets, needles", [
    (["cluster.gpu={name: x, peak_flops: {bf16: 1 PFLOP/s}, hbm_capacity: 80 GiB, hbm_bandwidth: 3 TB/s, "
      "tdp: 700 W, idle_power: 800 W}"], ("idle_power", "tdp")),
    (["cluster.gpu={name: x, peak_flops: {bf16: 1 PFLOP/s}, hbm_capacity: 80 GiB, hbm_bandwidth: 3 TB/s, "
      "tdp: 700 W, idle_power: 80 W, sparsity_2to4_speedup: -1.5}"], ("sparsity_2to4_speedup",)),
    (["cluster.reliability.spare_nodes=100000"], ("spare_nodes", "num_nodes")),
    (["training.train_tokens=0.001"], ("train_tokens", "global_batch_size")),
])
def test_physically_inconsistent_values_are_errors(capsys, sets, needles):
    argv = ["run", W8, *QUICK]
    for s in sets:
        argv += ["--set", s]
    err = cli(capsys, *argv, code=2)
    for needle in needles:
        assert needle in err


# --------------------------------------------------------------------------- blame

def test_errors_blame_the_key_or_flag_that_caused_them(capsys):
    err = cli(capsys, "run", W8, *QUICK, "--set", "parallelism.pipeline_model_parallel_size=64", code=2)
    assert "pipeline_model_parallel_size" in err and "decoder_last" not in err and "-32" not in err
    err = cli(capsys, "run", W8, *QUICK, "--gpus", "7", code=2)
    assert err.startswith("error: --gpus 7")
    err = cli(capsys, "run", W8, *QUICK, "--set", "cluster.num_nodes=3", code=2)
    assert err.startswith("error: --set cluster.num_nodes=3") and "num_gpus=512" in err
    main(["sweep", W8, "--grid", "num_gpus=7", *QUICK, "--workers", "1", "--no-progress", "--json"])
    row = json.loads(capsys.readouterr().out)[0]
    assert row["error"].startswith("--grid num_gpus=7")
    main(["compare", W8, "--vary", "cluster.num_nodes=3", *QUICK, "--workers", "1", "--no-progress", "--json"])
    row = json.loads(capsys.readouterr().out)[0]
    assert row["error"].startswith("--vary cluster.num_nodes=3")
