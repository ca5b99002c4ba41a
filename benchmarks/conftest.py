"""Benchmark helpers: this machine's own matmul rates, and throughput recorded in extra_info as a
fraction of them (ratios survive a change of machine; absolute times do not)."""

from __future__ import annotations

import functools
import time
from importlib.metadata import version

import pytest
import torch

REFERENCE_N = 2048  # the machine's rate is read off an n^3 fp32 matmul: big enough to reach the kernel's peak
SUMMARY = pytest.StashKey[list]()
REAL_SHAPES = pytest.StashKey[list]()  # benchmarks/test_real_shapes.py: a line per replica and per claim


def best_seconds(fn, repeats: int = 5, min_sample_s: float = 0.05) -> float:
    """Seconds per call of `fn`, best of `repeats` samples. A sample loops `fn` until it lasts
    `min_sample_s`, so a sub-millisecond call is not lost in the timer's resolution; the best sample
    is the one least disturbed by whatever else this (shared) machine runs."""
    fn()  # warm-up: the first call allocates and picks a kernel
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_sample_s:
            break
        loops *= 2
    best = elapsed / loops
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


@functools.cache
def matmul_gflops(m: int, k: int, n: int) -> float:
    """GFLOP/s of a plain fp32 (m, k) @ (k, n) torch matmul on this machine, measured once per shape."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / best_seconds(lambda: a @ b) / 1e9


def reference_gflops() -> float:
    return matmul_gflops(REFERENCE_N, REFERENCE_N, REFERENCE_N)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Stored with every saved run, so `verify bench-history` can turn its times into fractions of
    the matmul rate of the machine that ran it."""
    machine_info["verify"] = {"matmul_2048_gflops": round(reference_gflops(), 1), "torch_threads": torch.get_num_threads(),
                              "torch": torch.__version__, "verify": version("verify")}


@pytest.fixture
def record(request, benchmark):
    """record(flops=..., tokens=..., matmul_shape=(m, k, n)): store the counts and, when timed, the
    achieved rate as a fraction of the 2048^3 matmul and of a plain matmul of `matmul_shape` (a
    forward's MLP-in matmul on the same batch, an SAE encode's one matmul): the rate the timed code
    could reach at best at its own, smaller shapes."""

    def put(flops: int, tokens: int, matmul_shape: tuple[int, int, int] | None = None, **extra) -> None:
        info = benchmark.extra_info
        info.update(extra, flops=flops, tokens=tokens)
        if benchmark.stats is None:  # --benchmark-disable: nothing was timed, and nothing else is timed here
            return
        seconds = benchmark.stats.stats.mean
        gflops, reference = flops / seconds / 1e9, reference_gflops()
        info.update(tokens_per_s=round(tokens / seconds), gflops=round(gflops, 2),
                    fraction_of_matmul_2048=round(gflops / reference, 3))
        line = (f"{request.node.name}: {gflops:.1f} GFLOP/s = {gflops / reference:.0%} of the {REFERENCE_N}^3 matmul "
                f"({reference:.0f} GFLOP/s)")
        if matmul_shape is not None:
            same = matmul_gflops(*matmul_shape)
            info.update(matmul_shape=list(matmul_shape), same_shape_matmul_gflops=round(same, 1),
                        fraction_of_same_shape_matmul=round(gflops / same, 3))
            line += f", {gflops / same:.0%} of the same-shape matmul {'x'.join(map(str, matmul_shape))} ({same:.0f} GFLOP/s)"
        request.config.stash.setdefault(SUMMARY, []).append(line)

    return put


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("throughput: fraction of this machine's matmul rate")
        terminalreporter.write_line(f"torch {torch.__version__}, {torch.get_num_threads()} threads; mean time per call")
        for line in lines:
            terminalreporter.write_line(line)
    real = config.stash.get(REAL_SHAPES, [])
    if real:
        terminalreporter.section("the real checkpoints' shapes: each claim end to end on a replica")
        terminalreporter.write_line(f"torch {torch.__version__}, {torch.get_num_threads()} threads, this machine's "
                                    f"{REFERENCE_N}^3 matmul {reference_gflops():.0f} GFLOP/s")
        for line in real:
            terminalreporter.write_line(line)
