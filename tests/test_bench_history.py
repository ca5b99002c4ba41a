"""`verify bench-history`: fractions of the stored matmul rate across saved pytest-benchmark runs,
the drop gate, the plot, and its one-line errors. Runs are written in the format pytest-benchmark
5.2.3 saves (its FileStorage and pytest_benchmark_generate_json), with chosen times so the fractions
are known; one test has pytest-benchmark itself save two runs, so the format is the real one."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from matplotlib.image import imread

from verify.cli import bench_history

MACHINE = "Linux-CPython-3.11-64bit"
FORWARD = "benchmarks/test_bench_othello.py::test_forward_full_with_logits"
ENCODE = "benchmarks/test_bench_othello.py::test_sae_encode"


def stats(mean: float) -> dict:
    return {"min": mean, "max": mean, "mean": mean, "stddev": 0, "rounds": 1, "median": mean, "iqr": 0, "q1": mean,
            "q3": mean, "iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": mean, "hd15iqr": mean,
            "ops": 1 / mean, "total": mean, "data": [mean], "iterations": 1}


def save_run(storage, number: int, commit: str, matmul_gflops: float | None, means: dict[str, float],
             flops: float = 1e9) -> None:
    """One run as pytest-benchmark writes it to storage/<machine-id>/NNNN_<name>.json."""
    machine_info = {"node": "ci", "processor": "x86_64", "machine": "x86_64", "python_compiler": "GCC 11",
                    "python_implementation": "CPython", "python_implementation_version": "3.11.7",
                    "python_version": "3.11.7", "python_build": ["main", "Jan 1 2024"], "release": "6.1",
                    "system": "Linux", "cpu": {"arch": "X86_64", "count": 2}}
    if matmul_gflops is not None:
        machine_info["verify"] = {"matmul_2048_gflops": matmul_gflops, "torch_threads": 2, "torch": "2.13.0+cpu",
                                  "verify": "0.1.0"}
    benchmarks = [{"group": None, "name": name.split("::")[-1], "fullname": name, "params": None, "param": None,
                   "extra_info": {"flops": flops, "tokens": 1000},
                   "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                               "min_time": 5e-06, "warmup": False}, "stats": stats(mean)} for name, mean in means.items()]
    run = {"machine_info": machine_info,
           "commit_info": {"id": commit * 5, "time": "2025-01-01T00:00:00+00:00", "author_time": "2025-01-01T00:00:00+00:00",
                           "dirty": False, "project": "main", "branch": "main"},
           "benchmarks": benchmarks, "datetime": f"2025-01-0{number}T12:00:00.000000+00:00", "version": "5.2.3"}
    folder = storage / MACHINE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{number:04d}_{commit}.json").write_text(json.dumps(run, indent=4))


def history(argv, capsys) -> tuple[int, str, str]:
    try:
        bench_history.main([str(a) for a in argv])
        code = 0
    except SystemExit as done:
        code = done.code
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(out: str, name: str) -> list[list[str]]:
    """The table rows of benchmark `name`, split into words: run, date, time, commit, verify, threads,
    matmul GFLOP/s, GFLOP/s, fraction, change."""
    return [line.split() for line in out.split(name + "\n")[1].split("\n\n")[0].splitlines()[1:]]


def test_fractions_of_each_runs_own_matmul_rate(tmp_path, capsys):
    # 1 GFLOP per call; run 1: 0.1 s on a 100 GFLOP/s machine = 0.1 of it; run 2: a machine twice as
    # fast, same time (a slower program relative to the machine) = 0.05, -50%
    save_run(tmp_path, 1, "aaaa", 100.0, {FORWARD: 0.1, ENCODE: 0.02})
    save_run(tmp_path, 2, "bbbb", 200.0, {FORWARD: 0.1, ENCODE: 0.01})
    code, out, err = history([tmp_path], capsys)
    assert code == 0 and not err
    assert [r[8] for r in rows(out, FORWARD)] == ["0.1000", "0.0500"]
    assert [r[8] for r in rows(out, ENCODE)] == ["0.5000", "0.5000"]
    assert rows(out, FORWARD)[1] == [f"{MACHINE}/0002_bbbb", "2025-01-02", "12:00", "bbbbbbbbbb", "0.1.0", "2", "200.0",
                                     "10.00", "0.0500", "-50.0%"]


def test_a_run_without_the_stored_rate_is_reported_not_crashed_on(tmp_path, capsys):
    save_run(tmp_path, 1, "aaaa", None, {FORWARD: 0.1})
    save_run(tmp_path, 2, "bbbb", 100.0, {FORWARD: 0.1})
    code, out, _ = history([tmp_path, "--benchmark", "test_forward_full_with_logits", "--max-drop", "0.2"], capsys)
    assert code == 0
    assert " ".join(rows(out, FORWARD)[0][6:]) == "- 10.00 no stored matmul rate"
    assert "PASS " + FORWARD + ": 0.1000 of the matmul rate in " + f"{MACHINE}/0002_bbbb; no earlier run" in out
    save_run(tmp_path, 3, "cccc", None, {FORWARD: 0.1})
    code, out, _ = history([tmp_path, "--benchmark", FORWARD, "--max-drop", "0.2"], capsys)
    assert code == 1
    assert f"FAIL {FORWARD}: the latest run {MACHINE}/0003_cccc has no stored matmul rate" in out


@pytest.mark.parametrize("second_mean, allowed, code", [(0.125, 0.25, 0), (0.125, 0.15, 1), (0.08, 0.0, 0)])
def test_max_drop_gates_the_latest_fraction_against_the_previous(tmp_path, capsys, second_mean, allowed, code):
    # same machine, 0.1 s -> 0.125 s: the fraction falls by 20%
    save_run(tmp_path, 1, "aaaa", 100.0, {FORWARD: 0.1, ENCODE: 0.02})
    save_run(tmp_path, 2, "bbbb", 100.0, {FORWARD: second_mean, ENCODE: 0.001})
    got, out, _ = history([tmp_path, "--benchmark", FORWARD, "--max-drop", allowed], capsys)
    assert got == code
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("FAIL" if code else "PASS") and FORWARD in verdict
    if code:
        assert "0.1000" in verdict and "0.0800" in verdict and f"fell by more than the allowed {allowed:.0%}" in verdict
    assert ENCODE not in out  # --benchmark limits the table too


def test_a_benchmark_missing_from_the_latest_run_fails_the_gate(tmp_path, capsys):
    save_run(tmp_path, 1, "aaaa", 100.0, {FORWARD: 0.1, ENCODE: 0.02})
    save_run(tmp_path, 2, "bbbb", 100.0, {ENCODE: 0.02})
    code, out, _ = history([tmp_path, "--benchmark", FORWARD, "--max-drop", "0.5"], capsys)
    assert code == 1 and f"FAIL {FORWARD}: not in the latest run {MACHINE}/0002_bbbb" in out


def test_plot_is_a_png_with_the_lines_drawn(tmp_path, capsys):
    save_run(tmp_path, 1, "aaaa", 100.0, {FORWARD: 0.1, ENCODE: 0.02})
    save_run(tmp_path, 2, "bbbb", 100.0, {FORWARD: 0.05, ENCODE: 0.04})
    png = tmp_path / "history.png"
    code, out, _ = history([tmp_path, "--plot", png], capsys)
    assert code == 0 and f"plot: {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(png)[..., :3]
    blue = (np.abs(pixels - np.array([0.12, 0.47, 0.71])).sum(-1) < 0.1).sum()  # matplotlib's first line colour
    assert blue > 50  # the first benchmark's line is drawn, not a blank canvas


def test_errors_are_one_line_naming_the_path_or_name(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert history([missing], capsys)[::2] == (2, f"verify bench-history: {missing}: no such folder\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = history([empty], capsys)
    assert code == 2 and err.startswith(f"verify bench-history: {empty}: no saved runs") and err.count("\n") == 1
    save_run(tmp_path / "s", 1, "aaaa", 100.0, {FORWARD: 0.1})
    code, _, err = history([tmp_path / "s", "--benchmark", "test_nothing"], capsys)
    assert code == 2 and err.startswith("verify bench-history: no benchmark named 'test_nothing'") and FORWARD in err
    bad = tmp_path / "s" / MACHINE / "0002_broken.json"
    bad.write_text("{")
    code, _, err = history([tmp_path / "s"], capsys)
    assert code == 2 and err.startswith(f"verify bench-history: {bad}: not a pytest-benchmark run") and err.count("\n") == 1
    with pytest.raises(SystemExit) as done:
        bench_history.main([str(tmp_path / "s"), "--max-drop", "0.2"])
    assert done.value.code == 2 and "needs 0 <= F < 1 and at least one --benchmark" in capsys.readouterr().err


BENCH_FILE = """
import time

def test_sleep(benchmark):
    benchmark.pedantic(time.sleep, args=(0.01,), rounds=2)
    benchmark.extra_info["flops"] = 1e8
"""
CONFTEST = """
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["verify"] = {"matmul_2048_gflops": 50.0, "torch_threads": 1, "torch": "x", "verify": "0.1.0"}
"""


def test_reads_runs_that_pytest_benchmark_saved(tmp_path, capsys):
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(BENCH_FILE))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    storage = tmp_path / "storage"
    for name in ("first", "second"):
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:verify", "-p", "no:cacheprovider", "-q",
                        f"--benchmark-storage={storage}", f"--benchmark-save={name}", "test_tiny.py"],
                       cwd=tmp_path, check=True, capture_output=True)
    code, out, err = history([storage, "--benchmark", "test_sleep", "--max-drop", "0.9"], capsys)
    assert code == 0, err
    saved = rows(out, "test_tiny.py::test_sleep")
    assert [r[0].split("/")[-1] for r in saved] == ["0001_first", "0002_second"]
    # 0.1 GFLOP in a little over 10 ms is a little under 10 GFLOP/s, a fifth of the stored 50
    assert all(r[6] == "50.0" and 0.02 < float(r[8]) <= 0.2 for r in saved)
