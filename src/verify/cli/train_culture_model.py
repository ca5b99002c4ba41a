"""Train the embedded puzzle GPT (`culture-tiny`) on generated puzzles of the eight world tasks.

    verify train-culture-model --out fixtures/culture-tiny [--device auto] [--minutes 60] [--from-stage N]

The grid is smaller than the real 10x10 (CONFIG["layout"]) to keep sequences short (149 tokens)
for CPU training; README ("Embedded subjects") says what the shipped run reached. The loss is next-token cross-entropy on the cells of the two output-side
blocks (block 1: the first example's other half; block 3: the answer): the markers and the input
blocks are given, and block 2 carries the 5% noise. Progress (loss, held-out solved rate per task)
goes to stderr; the checkpoint is rewritten at every evaluation, so a cut run leaves a usable one.
Reproducible from the seeds in CONFIG on one device type.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm import tqdm

from verify.culture.data import TASKS
from verify.culture.evaluate import teacher_forced_verdicts
from verify.culture.layout import VOCAB_SIZE, PuzzleLayout
from verify.culture.tasks import generate_task
from verify.cli.checkpoint import build_model, save_checkpoint, train_command, warmup_cosine

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
    # Training runs in stages, each on fresh puzzles with its own warm-up and cosine schedule; a later
    # stage continues from the previous one's weights, so a CPU build can proceed a stage at a time
    # (--from-stage). Chunk c of task t in a stage is generate_task(t, chunk, train_seed + c).
    # "autocast": the forward pass in bfloat16 (weights and optimizer stay float32). On the 2-core
    # AVX512-BF16 CPU culture-tiny was trained on, a step takes half the time, so stages 3 and 4 train
    # on twice the puzzles; a CPU without native bfloat16 emulates it and is slower, not faster.
    "stages": [
        {"train_per_task": 12_000, "train_seed": 10_000, "lr": 2e-3, "warmup_steps": 200, "epochs": 2, "autocast": None},
        {"train_per_task": 12_000, "train_seed": 11_000, "lr": 1e-3, "warmup_steps": 100, "epochs": 2, "autocast": None},
        {"train_per_task": 24_000, "train_seed": 12_000, "lr": 1e-3, "warmup_steps": 100, "epochs": 2, "autocast": "bfloat16"},
        {"train_per_task": 24_000, "train_seed": 13_000, "lr": 1e-3, "warmup_steps": 100, "epochs": 2, "autocast": "bfloat16"},
        # half the peak rate: restarting at 1e-3 cost stage 4 its first 2000 steps (translate 0.88 -> 0.52)
        {"train_per_task": 48_000, "train_seed": 14_000, "lr": 5e-4, "warmup_steps": 100, "epochs": 2, "autocast": "bfloat16"},
    ],
    "chunk": 500,
    "eval_per_task": 200,
    "eval_seed": 20_000,
    "batch": 64,
    "weight_decay": 0.01,
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


def train(out: Path, device: str, minutes: float, from_stage: int = 1) -> None:
    """Run stages from_stage.. of CONFIG; a stage > 1 starts from the weights that stage 1.. left in `out`."""
    cfg = CONFIG
    log = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731 - above the progress bar, not through it
    if not 1 <= from_stage <= len(cfg["stages"]):
        raise SystemExit(f"--from-stage {from_stage}: CONFIG has stages 1..{len(cfg['stages'])}")
    torch.manual_seed(cfg["model"]["seed"])
    model = build_model(cfg["model"], device)
    done: list[dict] = []
    if from_stage > 1:
        done = finished_stages(out, from_stage - 1)
        # the file holds parameters only; strict loading over the model's own buffers still rejects unknown names
        model.load_state_dict(model.state_dict() | load_file(out / "model.safetensors", device=device))
    log(f"generating {cfg['eval_per_task']} held-out puzzles per task ...")
    held_out = generate(cfg["eval_per_task"], cfg["eval_seed"], cfg["chunk"], log).to(device)
    start = time.time()
    for number in range(from_stage, len(cfg["stages"]) + 1):
        record = {"stage": number, "device": device}
        done.append(record)
        finished = train_stage(model, cfg["stages"][number - 1], held_out, device, start + minutes * 60, record,
                               lambda: save_checkpoint(model, out, cfg["model"], {"config": cfg, "stages": done}), log)
        if not finished:
            break
    log(f"finished ({done[-1]['stopped']})")


def finished_stages(out: Path, n: int) -> list[dict]:
    """The records of stages 1..n from out/training.json, each of which must have run to its end."""
    path = out / "training.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run stage 1 first (without --from-stage)")
    stages = json.loads(path.read_text()).get("stages", [])
    if len(stages) < n or any(st["stopped"] != "all epochs done" for st in stages[:n]):
        raise SystemExit(f"{path}: stages 1..{n} have not all run to their end ({[st.get('stopped') for st in stages]})")
    return stages[:n]


def train_stage(model, stage: dict, held_out: torch.Tensor, device: str, deadline: float, record: dict, save, log) -> bool:
    """One stage in place on `model`; `record` gets steps, history and why it stopped. True if it ran to its end."""
    cfg = CONFIG
    log(f"stage {record['stage']}: generating {stage['train_per_task']} training puzzles per task ...")
    x = generate(stage["train_per_task"], stage["train_seed"], cfg["chunk"], log).to(device)
    positions = loss_positions(LAYOUT).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=stage["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = len(x) // cfg["batch"]
    total = steps_per_epoch * stage["epochs"]
    sched = warmup_cosine(opt, stage["warmup_steps"], total)
    gen = torch.Generator().manual_seed(stage["train_seed"])
    autocast = (torch.autocast(torch.device(device).type, dtype=getattr(torch, stage["autocast"])) if stage["autocast"]
                else contextlib.nullcontext())
    history, step, start = [], 0, time.time()
    record.update(steps=0, stopped="running", history=history)
    log(f"stage {record['stage']}: {total} steps of {cfg['batch']} puzzles on {device}")

    def evaluate(loss: float) -> None:
        rates = solved_rates(model, held_out, cfg["eval_per_task"])
        history.append({"step": step, "loss": round(loss, 5), "solved": rates, "seconds": round(time.time() - start)})
        record["steps"] = step
        log(f"stage {record['stage']} step {step}/{total} loss {loss:.4f} ({(time.time() - start) / 60:.1f} min) held-out solved: "
            + " ".join(f"{t}={r:.2f}" for t, r in rates.items()))
        save()

    # disable=None: a bar on a terminal only, so logs and CI output keep the evaluation lines alone
    bar = tqdm(total=total, desc=f"stage {record['stage']}", unit="step", disable=None)
    for _ in range(stage["epochs"]):
        order = torch.randperm(len(x), generator=gen).to(device)
        for b in range(steps_per_epoch):
            batch = x[order[b * cfg["batch"] : (b + 1) * cfg["batch"]]]
            with autocast:
                logits = model(batch[:, :-1])[:, positions]
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), batch[:, positions + 1].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update()
            if step % cfg["eval_every"] == 0 or step == total:
                evaluate(loss.item())
            if time.time() > deadline and step < total:
                record["stopped"] = "time budget reached"
                evaluate(loss.item())
                bar.close()
                return False
    bar.close()
    record["stopped"] = "all epochs done"
    save()
    return True


def main(argv: list[str] | None = None) -> None:
    train_command(__doc__, Path("fixtures/culture-tiny"), train, argv, stages=len(CONFIG["stages"]))


if __name__ == "__main__":
    main()
