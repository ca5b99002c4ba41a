"""Train the embedded puzzle GPT (`culture-tiny`) on generated puzzles of the eight world tasks.

    python -m verify.train.culture_model --out fixtures/culture-tiny [--device auto] [--minutes 60]

The grid is smaller than the real 10x10 (CONFIG["layout"]) to keep sequences short (149 tokens)
for CPU training; README ("Embedded subjects") says what the shipped run reached. The loss is next-token cross-entropy on the cells of the two output-side
blocks (block 1: the first example's other half; block 3: the answer): the markers and the input
blocks are given, and block 2 carries the 5% noise. Progress (loss, held-out solved rate per task)
goes to stderr; the checkpoint is rewritten at every evaluation, so a cut run leaves a usable one.
Reproducible from the seeds in CONFIG on one device type.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from verify.culture.data import TASKS
from verify.culture.evaluate import teacher_forced_verdicts
from verify.culture.layout import VOCAB_SIZE, PuzzleLayout
from verify.culture.tasks import generate_task
from verify.train.checkpoint import build_model, save_checkpoint, train_command, warmup_cosine

LAYOUT = PuzzleLayout(6, 6, 4, True)
CONFIG = {
    "layout": {"height": LAYOUT.height, "width": LAYOUT.width},
    "model": {
        "n_layers": 4,
        "d_model": 128,
        "n_heads": 4,
        "d_head": 32,
        "d_mlp": 512,
        "d_vocab": VOCAB_SIZE,
        "n_ctx": LAYOUT.length - 1,  # the last token predicts nothing
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "seed": 0,
    },
    "train_per_task": 12_000,
    "train_seed": 10_000,  # chunk c of task t is generate_task(t, chunk, train_seed + c)
    "chunk": 500,
    "eval_per_task": 200,
    "eval_seed": 20_000,
    "batch": 64,
    "lr": 2e-3,
    "weight_decay": 0.01,
    "warmup_steps": 200,
    "epochs": 2,
    "eval_every": 500,
}


def loss_positions(layout: PuzzleLayout) -> torch.Tensor:
    """Logit positions whose next token is a cell of block 1 or of the answer block."""
    cells = torch.cat([torch.arange(layout.grid_slice(k).start, layout.grid_slice(k).stop) for k in (1, layout.n_blocks - 1)])
    return cells - 1


def generate(per_task: int, seed: int, chunk: int, log) -> torch.Tensor:
    """(8 * per_task, length) puzzles, task-major, generated in chunks on every CPU core."""
    jobs = [(task, min(chunk, per_task - start), seed + start // chunk) for task in TASKS for start in range(0, per_task, chunk)]
    # spawn, not fork: forking a process whose torch thread pool is running is unsafe
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = []
        for i, part in enumerate(pool.map(generate_task, *zip(*jobs), [LAYOUT] * len(jobs))):
            parts.append(part)
            log(f"  generated {i + 1}/{len(jobs)} chunks")
    return torch.cat(parts)


def solved_rates(model, puzzles: torch.Tensor, per_task: int) -> dict[str, float]:
    flags = teacher_forced_verdicts(model, puzzles, LAYOUT, batch_size=200).float().cpu()
    return {task: round(flags[i * per_task : (i + 1) * per_task].mean().item(), 4) for i, task in enumerate(TASKS)}


def train(out: Path, device: str, minutes: float) -> None:
    cfg = CONFIG
    torch.manual_seed(cfg["model"]["seed"])
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"generating {cfg['train_per_task']} training and {cfg['eval_per_task']} held-out puzzles per task ...")
    x = generate(cfg["train_per_task"], cfg["train_seed"], cfg["chunk"], log).to(device)
    held_out = generate(cfg["eval_per_task"], cfg["eval_seed"], cfg["chunk"], log).to(device)
    positions = loss_positions(LAYOUT).to(device)

    model = build_model(cfg["model"], device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = len(x) // cfg["batch"]
    total = steps_per_epoch * cfg["epochs"]
    sched = warmup_cosine(opt, cfg["warmup_steps"], total)
    gen = torch.Generator().manual_seed(cfg["train_seed"])
    history, step, start, stop_reason = [], 0, time.time(), "all epochs done"
    log(f"{total} steps of {cfg['batch']} puzzles on {device}")

    def evaluate(loss: float) -> None:
        rates = solved_rates(model, held_out, cfg["eval_per_task"])
        history.append({"step": step, "loss": round(loss, 5), "solved": rates, "seconds": round(time.time() - start)})
        log(f"step {step}/{total} loss {loss:.4f} ({(time.time() - start) / 60:.1f} min) held-out solved: "
            + " ".join(f"{t}={r:.2f}" for t, r in rates.items()))

    def save(stopped: str) -> None:
        save_checkpoint(model, out, cfg["model"], {"config": cfg, "device": device, "steps": step, "stopped": stopped, "history": history})

    for epoch in range(cfg["epochs"]):
        order = torch.randperm(len(x), generator=gen).to(device)
        for b in range(steps_per_epoch):
            batch = x[order[b * cfg["batch"] : (b + 1) * cfg["batch"]]]
            logits = model(batch[:, :-1])[:, positions]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), batch[:, positions + 1].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % cfg["eval_every"] == 0:
                evaluate(loss.item())
                save("in progress")
            if (time.time() - start) / 60 > minutes:
                stop_reason = f"time budget of {minutes} min reached"
                break
        else:
            continue
        break
    if not history or history[-1]["step"] != step:  # unless the last step was just evaluated
        evaluate(loss.item())
    save(stop_reason)
    log(f"finished ({stop_reason})")


def main(argv: list[str] | None = None) -> None:
    train_command(__doc__, Path("fixtures/culture-tiny"), train, argv)


if __name__ == "__main__":
    main()
