"""Train the embedded Othello-GPT (`othello-tiny`) on synthetic games.

    verify train-othello-model --out fixtures/othello-tiny [--device auto] [--minutes 60]

Reproducible from the seeds in CONFIG (on one device type; GPU kernels differ in the last bits).
The target at each position is the uniform distribution over the legal next moves: under uniformly
random play that is the expectation of the one-hot next-token target, so the optimum is the same
as next-token training, with far less noise per game (it learns in CPU-minutes instead of hours).
Writes model.safetensors, model_config.json and training.json into --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from verify.othello import rules as othello
from verify.cli.checkpoint import build_model, save_checkpoint, train_command, warmup_cosine

CONFIG = {
    "model": {
        "n_layers": 4,
        "d_model": 128,
        "n_heads": 4,
        "d_head": 32,
        "d_mlp": 512,
        "d_vocab": 61,
        "n_ctx": othello.MODEL_INPUT_LENGTH,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "seed": 0,
    },
    "train_games": 120_000,
    "train_seed": 1,
    "eval_games": 1_000,
    "eval_seed": 2,
    "batch_games": 128,
    "lr": 2e-3,
    "weight_decay": 0.01,
    "warmup_steps": 200,
    "epochs": 6,
    "target_legal_rate": 0.985,
}


def soft_targets(games: othello.Games) -> torch.Tensor:
    """(N, 59, 61): uniform over the legal next moves' tokens at each of the 59 input positions."""
    legal = games.legal[:, : othello.MODEL_INPUT_LENGTH]  # (N, 59, 64)
    target = np.zeros(legal.shape[:2] + (61,), dtype=np.float32)
    target[..., 1:] = legal[..., othello.TOKEN_TO_SQUARE[1:]]
    target /= target.sum(-1, keepdims=True)
    return torch.from_numpy(target)


@torch.inference_mode()
def legal_top1_rate(model, tokens: torch.Tensor, legal_tokens: torch.Tensor, batch: int = 500) -> float:
    hits = []
    for i in range(0, len(tokens), batch):
        logits = model(tokens[i : i + batch])
        top = logits.argmax(-1)
        hits.append(legal_tokens[i : i + batch].gather(-1, top[..., None])[..., 0])
    return torch.cat(hits).float().mean().item()


def train(out: Path, device: str, minutes: float) -> None:
    cfg = CONFIG
    torch.manual_seed(cfg["model"]["seed"])
    log = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731 - above the progress bar, not through it
    log(f"generating {cfg['train_games']} training games (seed {cfg['train_seed']}) ...")
    t0 = time.time()
    train_games = othello.generate_games(cfg["train_games"], cfg["train_seed"])
    eval_games = othello.generate_games(cfg["eval_games"], cfg["eval_seed"])
    log(f"  done in {time.time() - t0:.0f}s")
    x = torch.from_numpy(train_games.tokens[:, : othello.MODEL_INPUT_LENGTH]).to(device)
    y = soft_targets(train_games).to(device)
    ex = torch.from_numpy(eval_games.tokens[:, : othello.MODEL_INPUT_LENGTH]).to(device)
    ey = soft_targets(eval_games).to(device) > 0

    model = build_model(cfg["model"], device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = len(x) // cfg["batch_games"]
    total = steps_per_epoch * cfg["epochs"]
    sched = warmup_cosine(opt, cfg["warmup_steps"], total)
    gen = torch.Generator().manual_seed(cfg["train_seed"])
    history, step, start = [], 0, time.time()
    rate = legal_top1_rate(model, ex, ey)
    log(f"start: legal top-1 {rate:.4f}; {total} steps of {cfg['batch_games']} games on {device}")
    stop_reason = "all epochs done"
    bar = tqdm(total=total, unit="step", disable=None)  # on a terminal only: logs keep the evaluation lines alone
    for epoch in range(cfg["epochs"]):
        order = torch.randperm(len(x), generator=gen).to(device)
        for b in range(steps_per_epoch):
            idx = order[b * cfg["batch_games"] : (b + 1) * cfg["batch_games"]]
            logits = model(x[idx])
            loss = -(y[idx] * logits.log_softmax(-1)).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update()
            if step % 200 == 0 or step == total:
                rate = legal_top1_rate(model, ex, ey)
                elapsed = time.time() - start
                history.append({"step": step, "loss": round(loss.item(), 5), "legal_top1": round(rate, 5), "seconds": round(elapsed)})
                log(f"epoch {epoch} step {step}/{total} loss {loss.item():.4f} legal top-1 {rate:.4f} ({elapsed / 60:.1f} min)")
                save(model, out, cfg, history, device, step, stop_reason="in progress")
            if elapsed_minutes(start) > minutes:
                stop_reason = f"time budget of {minutes} min reached"
                break
        else:
            continue
        break
    bar.close()
    rate = legal_top1_rate(model, ex, ey)
    history.append({"step": step, "loss": round(loss.item(), 5), "legal_top1": round(rate, 5), "seconds": round(time.time() - start)})
    save(model, out, cfg, history, device, step, stop_reason)
    log(f"finished ({stop_reason}): legal top-1 on {cfg['eval_games']} held-out games = {rate:.4f}")


def elapsed_minutes(start: float) -> float:
    return (time.time() - start) / 60


def save(model, out: Path, cfg: dict, history: list, device: str, step: int, stop_reason: str) -> None:
    save_checkpoint(model, out, cfg["model"], {"config": cfg, "device": device, "steps": step, "stopped": stop_reason, "history": history})


def main(argv: list[str] | None = None) -> None:
    train_command(__doc__, Path("fixtures/othello-tiny"), train, argv)


if __name__ == "__main__":
    main()
