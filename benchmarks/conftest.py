"""Benchmark helpers: the machine's own matmul rate, and throughput recorded in extra_info."""

import time

import pytest
import torch


@pytest.fixture(scope="session")
def matmul_gflops() -> float:
    """fp32 matmul rate of this machine, measured now (1024^3 matmuls, best of 5 runs)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * 1024**3 / best / 1e9


@pytest.fixture
def record(benchmark, matmul_gflops):
    """record(flops=..., tokens=...): store counts and, when timed, rates and fraction of matmul peak."""

    def put(flops: int, tokens: int, **extra) -> None:
        info = benchmark.extra_info
        info.update(extra, flops=flops, tokens=tokens, machine_matmul_gflops=round(matmul_gflops, 1))
        stats = getattr(benchmark, "stats", None)
        if stats is not None and stats.stats.mean > 0:  # None under --benchmark-disable
            seconds = stats.stats.mean
            info.update(tokens_per_s=round(tokens / seconds), gflops=round(flops / seconds / 1e9, 2),
                        fraction_of_matmul_peak=round(flops / seconds / 1e9 / matmul_gflops, 3))

    return put
