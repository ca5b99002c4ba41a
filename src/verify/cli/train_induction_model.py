"""Train the embedded induction-tiny subject: a 2-layer attention-only transformer on repeated random
tokens, an sae_lens SAE on one of its hooks, and its manifest's model / SAE / data tables.

    verify train-induction-model [--out fixtures/induction-tiny] [--manifest fixtures/subjects/induction-tiny.toml]
    verify train-induction-model --no-repeat --out fixtures/induction-tiny-norepeat --manifest ...  # the control
    verify train-induction-model --sae-only --manifest fixtures/subjects/induction-tiny.toml        # the SAE alone

Reproducible from the seeds in CONFIG on one device type (CPU, one thread: a few minutes). Training
sequences come from the tokens-synthetic generator (verify.tokens.data) with the manifest's [data]
keys and a training seed of their own, so the selection and confirmation splits are never trained
on. `--no-repeat` trains a model of the same shape, for the same steps, on sequences in which no
token occurs twice: the negative control, which must fail the induction claims. The SAE is trained
with sae_lens' own SAETrainer on cached activations (verify.cli.sae); `--sae-only` retrains it on the
model already in --out (trained with this CONFIG's model settings). The claims are written
afterwards by `verify discover-tokens MANIFEST --write`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from verify.cli.checkpoint import build_model, save_checkpoint, warmup_cosine
from verify.cli.manifest_tables import update_manifest
from verify.devices import resolve_device
from verify.sources import sha256_of
from verify.tokens.data import RepeatedTokens, generate

DATA = RepeatedTokens(vocab_size=64, bos=0, min_length=8, max_length=16, max_offset=8)
CONFIG = {
    "model": {
        "n_layers": 2,
        "d_model": 64,
        "n_heads": 4,
        "d_head": 16,
        "d_mlp": None,
        "attn_only": True,
        "d_vocab": DATA.vocab_size,
        "n_ctx": DATA.length,
        "normalization_type": "LN",
        "positional_embedding_type": "shortformer",  # positions enter queries and keys only: with them in the residual stream (standard) the model solved the repeats another way, its layer-0 heads attending 7 or more tokens back and none to the previous token
        "seed": 0,
    },
    "train_seed": 1,
    "steps": 4000,
    "batch": 64,
    "lr": 3e-3,  # at 1e-3 the loss was still on its plateau (4.15, log 64 = 4.16) after 1250 of 3000 steps; at 3e-3 3.20
    "weight_decay": 0.01,
    "warmup_steps": 100,
    # TopK, k 8 of 128, decoder bias started at the activations' mean. 70% of this hook's positions
    # (every one the induction heads do not fire on) carry one vector of norm 40, the rest norm 12:
    # standard (L1) SAEs stayed dense or lost the reconstruction (L1 coefficient 8: L0 184 of 256,
    # explained variance 0.85; 40, b_dec at the mean: L0 17, explained variance 0.31, 40% dead);
    # TopK with b_dec at zero spread the induction positions over per-token features (best feature's
    # r with seen_before 0.55, 0.34 after 600k tokens, a random TopK SAE's best 0.34); with b_dec at
    # the mean one feature fires on the induction positions (r 0.96). TopK's auxiliary loss acts only on
    # features silent for dead_feature_window steps: 1000 (of the run's 1953) left 58% dead, 100 2%.
    # The sweep: README "### induction-tiny".
    "sae": {"hook": "blocks.1.hook_attn_out", "architecture": "topk", "d_sae": 128, "k": 8, "b_dec_init": "mean",
            "dead_feature_window": 100, "training_tokens": 2_000_000, "sequences": 8192, "sequences_seed": 3, "seed": 0},
    "splits": {"size": 256, "selection_seed": 100, "confirmation_seed": 101},
}


def train(out: Path, device: str, repeat: bool, steps: int) -> dict:
    cfg = CONFIG
    data = dataclasses.replace(DATA, repeat=repeat)
    torch.manual_seed(cfg["model"]["seed"])
    model = build_model(cfg["model"], device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = warmup_cosine(opt, cfg["warmup_steps"], steps)
    start, history = time.time(), []
    print(f"generating {steps * cfg['batch']} training sequences (seed {cfg['train_seed']}, repeat={repeat}) ...", file=sys.stderr)
    tokens = torch.from_numpy(generate(data, steps * cfg["batch"], cfg["train_seed"]).tokens).to(device)
    for step in range(steps):
        batch = tokens[step * cfg["batch"] : (step + 1) * cfg["batch"]]
        loss = model(batch, return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1)})
            print(f"step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    record = {"config": cfg, "data": dataclasses.asdict(data), "device": device, "steps": steps,
              "seconds": round(time.time() - start, 1), "history": history}
    save_checkpoint(model, out, cfg["model"], record)
    return record


def train_sae_on(model_dir: Path, device: str) -> dict:
    from verify.cli.sae import train_sae
    from verify.loaders.hooked_transformer import load_hooked_transformer

    spec = CONFIG["sae"]
    model = load_hooked_transformer(model_dir / "model.safetensors", model_dir / "model_config.json", device)
    tokens = torch.from_numpy(generate(DATA, spec["sequences"], spec["sequences_seed"]).tokens)
    start = time.time()
    summary = train_sae(model, tokens, spec["hook"], model_dir / "sae", d_sae=spec["d_sae"], architecture=spec["architecture"],
                        k=spec["k"], b_dec_init=spec["b_dec_init"], dead_feature_window=spec["dead_feature_window"],
                        training_tokens=spec["training_tokens"], seed=spec["seed"], device=device)
    # sae_lens writes cfg.json's keys in an order that varies with Python's hash seed (same content,
    # other bytes, another sha256 in the manifest): written again with sorted keys, the file is reproducible
    cfg_path = model_dir / "sae" / "cfg.json"
    cfg_path.write_text(json.dumps(json.loads(cfg_path.read_text()), sort_keys=True))
    return {**summary, "seconds": round(time.time() - start, 1)}


def kept_model_record(out: Path) -> dict:
    """The training record of the model already in `out`, which --sae-only keeps: its config must be
    this CONFIG's but for the SAE (an SAE trained on another model than the record says is refused)."""
    path = out / "training.json"
    try:
        record = json.loads(path.read_text())
        kept = {k: v for k, v in record["config"].items() if k != "sae"}
    except (OSError, ValueError, KeyError, AttributeError) as err:
        sys.exit(f"{path}: no training record of a model to keep ({type(err).__name__}: {err}); train the model first")
    wanted = {k: v for k, v in json.loads(json.dumps(CONFIG)).items() if k != "sae"}
    if kept != wanted or not record.get("data", {}).get("repeat", False):
        sys.exit(f"{path}: config: the kept model was trained with other settings than CONFIG (or on the no-repeat control); "
                 "retrain it without --sae-only")
    return record


def write_manifest(path: Path, out: Path, name: str, repeat: bool, record: dict, sae_summary: dict | None) -> None:
    rel = lambda p: Path(os.path.relpath(p.resolve(), path.parent.resolve())).as_posix()  # noqa: E731 - paths from the manifest's folder
    tables = {
        "model": {"loader": "hooked_transformer", "weights": rel(out / "model.safetensors"), "config": rel(out / "model_config.json"),
                  "sha256": {"weights": sha256_of(out / "model.safetensors"), "config": sha256_of(out / "model_config.json")}},
        "data": {"source": "tokens-synthetic", **CONFIG["splits"],
                 **{k: v for k, v in dataclasses.asdict(DATA).items()}},
        "training": {"model_record": rel(out / "training.json"), "seconds": record["seconds"], "steps": record["steps"],
                     "final_training_loss": record["history"][-1]["loss"],
                     "trained_on": "repeated random tokens" if repeat else "sequences in which no token repeats (control)"},
    }
    if sae_summary is not None:
        sae = out / "sae"
        tables["saes.attn1"] = {"loader": "sae_lens", "hook": CONFIG["sae"]["hook"], "path": rel(sae),
                                "sha256": {f.name: sha256_of(f) for f in sorted(sae.iterdir())}}
        tables["training"]["sae_config"] = json.dumps(CONFIG["sae"])
        tables["training"]["sae_summary"] = json.dumps(sae_summary)
    description = ("2-layer attention-only transformer (d_model 64, 4 heads) trained on repeated random tokens; SAE on "
                   "blocks.1.hook_attn_out" if repeat else
                   "induction-tiny's shape and training, on sequences in which no token repeats: the negative control")
    update_manifest(path, tables, top={"name": name, "domain": "tokens", "description": description},
                    header=f"{name}: written by `verify train-induction-model`; claims by `verify discover-tokens`.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("fixtures/induction-tiny"))
    parser.add_argument("--manifest", type=Path, default=None, help="write the manifest's model, SAE and data tables here")
    parser.add_argument("--name", default="induction-tiny", help="the subject's name in the manifest")
    parser.add_argument("--no-repeat", action="store_true", help="train the control on sequences that never repeat (no SAE)")
    parser.add_argument("--sae-only", action="store_true",
                        help="keep the model in --out (its training.json must match CONFIG but for the SAE) and retrain only the SAE")
    parser.add_argument("--steps", type=int, default=CONFIG["steps"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the shipped weights were trained on cpu)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(1)  # the shipped weights' thread count (sums differ in the last bits otherwise); faster too on a shared CPU
    if args.sae_only:
        if args.no_repeat:
            parser.error("--sae-only and --no-repeat: the control has no SAE")
        record = kept_model_record(args.out)
    else:
        record = train(args.out, device, not args.no_repeat, args.steps)
    sae_summary = None if args.no_repeat else train_sae_on(args.out, device)
    if sae_summary is not None:
        record["sae"] = sae_summary
        save_record = json.loads((args.out / "training.json").read_text())
        save_record["config"]["sae"] = CONFIG["sae"]  # the SAE's config, also when --sae-only kept an older record's model
        (args.out / "training.json").write_text(json.dumps({**save_record, "sae": sae_summary}, indent=2) + "\n")
        print(f"SAE: {sae_summary}", file=sys.stderr)
    if args.manifest is not None:
        write_manifest(args.manifest, args.out, args.name, not args.no_repeat, record, sae_summary)


if __name__ == "__main__":
    main()
