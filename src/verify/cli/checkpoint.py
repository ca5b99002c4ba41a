"""What the model trainers and subject builders share: the model from plain config, the LR schedule,
saving as the embedded subjects ship it, and their command lines."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Callable

import torch

from verify.devices import resolve_device


def build_model(model_cfg: dict, device: str):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    return HookedTransformer(HookedTransformerConfig(**model_cfg, device=device))


def save_checkpoint(model, out: Path, model_cfg: dict, record: dict) -> None:
    """model.safetensors (parameters only: buffers are rebuilt on load), model_config.json, training.json."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.named_parameters()}, out / "model.safetensors")
    (out / "model_config.json").write_text(json.dumps(model_cfg, indent=2) + "\n")
    (out / "training.json").write_text(json.dumps({**record, "torch": torch.__version__}, indent=2) + "\n")


def warmup_cosine(opt, warmup_steps: int, total_steps: int):
    """Linear warm-up over `warmup_steps`, then cosine decay to zero at `total_steps`."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))


def train_command(doc: str, default_out: Path, train: Callable[..., None], argv: list[str] | None = None, stages: int = 1) -> None:
    """`--out --device --minutes` -> train(out, device, minutes); with stages > 1 also `--from-stage`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--minutes", type=float, default=90.0, help="stop training after this many minutes")
    if stages > 1:
        parser.add_argument("--from-stage", type=int, default=1, choices=range(1, stages + 1),
                            help="continue from the weights the earlier stages left in --out")
    args = parser.parse_args(argv)
    train(args.out, resolve_device(args.device), args.minutes, *([args.from_stage] if stages > 1 else []))


def build_command(doc: str, out: Path, build: Callable[[str, float, bool, bool], None], argv: list[str] | None = None) -> None:
    """`--device --minutes --skip-model --claims-only` -> build(device, minutes, skip_model, claims_only)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--minutes", type=float, default=90.0, help="time budget for model training")
    parser.add_argument("--skip-model", action="store_true", help=f"reuse the trained model in {out}")
    parser.add_argument("--claims-only", action="store_true",
                        help="reuse the trained model and SAE; re-measure on the selection split and rewrite the claims "
                             "(after a change of definitions)")
    args = parser.parse_args(argv)
    build(resolve_device(args.device), args.minutes, args.skip_model or args.claims_only, args.claims_only)
