"""Choosing the torch device from a user's word (cpu, cuda or auto)."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("cpu", "cuda", "auto")


def resolve_device(choice: str) -> str:
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return choice
