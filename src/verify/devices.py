"""Choosing the torch device from a user's word (cpu, cuda or auto), and one GPU per xdist worker."""

from __future__ import annotations

DEVICE_CHOICES = ("cpu", "cuda", "auto")


def resolve_device(choice: str) -> str:
    import torch  # here, not at import: the plugin's options and a `verify compare` need no torch

    if choice not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return choice


def worker_device(device: str, worker: str | None, gpus: int) -> str:
    """Under pytest-xdist, worker gwK takes GPU K mod gpus, so `pytest -n N` spreads subjects over
    a machine's GPUs; a CPU, a device the user named by index, or a single GPU stay as they are."""
    if device != "cuda" or not worker or not worker.startswith("gw") or gpus < 2:
        return device
    return f"cuda:{int(worker[2:]) % gpus}"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or taskset narrows)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_threads(workers: int, cores: int) -> int:
    """torch intra-op threads for each of `workers` processes sharing `cores`: each its share, at
    least one. Torch's default (every core in every worker) makes N workers fight over the cores:
    `-n 2` on 2 cores ran the forwards 5.6x slower than serially."""
    return max(1, cores // max(1, workers))
