"""Build the embedded subject `culture-tiny` from nothing: model, discovery, SAE, manifest.

    verify build-culture-tiny [--device auto] [--minutes 60] [--skip-model]

1. trains the model (verify.cli.train_culture_model, every stage of its CONFIG) into fixtures/culture-tiny/;
2. writes fixtures/subjects/culture-tiny.toml with the model's files, hashes and training record;
3. sweeps every layer's attention and MLP output against every task on the *selection* split
   (verify.cli.discover_culture) and keeps the most selective (hook, task) pair;
4. trains an sae_lens SAE on that hook from activations on freshly generated puzzles;
5. measures solved rates and the splice on the selection split and writes the three claims with
   thresholds from POLICY. The claims then confirm on the confirmation split.
Every step is seeded; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from verify import sources, stats
from verify.culture.data import TASKS
from verify.culture.tasks import generate_task
from verify.culture import findings as f
from verify.subjects import load_subject, read_structure
from verify.cli import discover_culture, fidelity_floors
from verify.cli import train_culture_model as culture_model
from verify.cli.checkpoint import build_command
from verify.cli.manifest_tables import update_manifest
from verify.cli.sae import train_sae

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "fixtures" / "culture-tiny"
MANIFEST = ROOT / "fixtures" / "subjects" / "culture-tiny.toml"
SAE = {"d_sae": 1024, "l1_coefficient": 2.0, "training_tokens": 4_000_000, "puzzles_per_task": 800, "puzzles_seed": 30_000, "seed": 0}
DATA = {"selection_seed": 100, "confirmation_seed": 101, "size": 400}
# Thresholds written from the selection split's measurements. A task's solved-rate bound is its
# selection rate minus the larger of solved_rate_slack and `standard_errors` standard errors of a
# rate difference between two splits; a task whose bound would be <= min_claimed_rate is left out
# of the claim (a bound of zero cannot fail) and named in the manifest as not learned.
POLICY = {"solved_rate_slack": 0.05, "standard_errors": 3, "min_claimed_rate": 0.02,
          "min_restored_fraction_of_selection": 0.5}

HEADER = """\
culture-tiny: a puzzle GPT and SAE trained by this repository (README: "Embedded subjects").
Rebuilt by `verify build-culture-tiny`, which rewrites the tables it owns and keeps any other."""
TOP = {"name": "culture-tiny", "domain": "culture",
       "description": "4-layer, 128-wide puzzle GPT on generated 6x6 puzzles of the eight world tasks"}


def solved_bounds(solved: dict, n: int | dict) -> dict[str, float]:
    """task -> lower bound for the tasks that are claimed (POLICY); n: puzzles counted (per task)."""
    count = (lambda t: n[t]) if isinstance(n, dict) else (lambda t: n)  # noqa: E731
    bounds = {t: e.value - max(POLICY["solved_rate_slack"], POLICY["standard_errors"] * stats.rate_difference_se(e.value, count(t)))
              for t, e in solved.items()}
    return {t: round(b, 4) for t, b in bounds.items() if b > POLICY["min_claimed_rate"]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sae_name(hook: str) -> str:
    """blocks.2.hook_mlp_out -> mlp2, blocks.1.hook_attn_out -> attn1."""
    _, layer, point = hook.split(".")
    return point.removeprefix("hook_").removesuffix("_out") + layer


def write_header() -> None:
    record = json.loads((OUT / "training.json").read_text())
    update_manifest(MANIFEST, top=TOP, header=HEADER, tables={
        "model": {"loader": "hooked_transformer", "weights": "../culture-tiny/model.safetensors",
                  "config": "../culture-tiny/model_config.json",
                  "sha256": {"weights": sources.sha256_of(OUT / "model.safetensors"), "config": sources.sha256_of(OUT / "model_config.json")}},
        "data": {"source": "culture-synthetic", "grid_height": culture_model.LAYOUT.height, "grid_width": culture_model.LAYOUT.width,
                 **DATA},
        "training": training_table(record)})


def training_table(record: dict, **more: str) -> dict:
    return {"model_record": "../culture-tiny/training.json",
            "model_solved_heldout": json.dumps(record["stages"][-1]["history"][-1]["solved"]), **more}


def train_splice_sae(subject, hook: str, device: str) -> dict:
    tokens = torch.cat([generate_task(task, SAE["puzzles_per_task"], SAE["puzzles_seed"], culture_model.LAYOUT) for task in TASKS])
    return train_sae(subject.model, tokens[:, :-1], hook, OUT / f"sae-{sae_name(hook)}", d_sae=SAE["d_sae"],
                     l1_coefficient=SAE["l1_coefficient"], training_tokens=SAE["training_tokens"], seed=SAE["seed"], device=device)


def build(device: str, minutes: float, skip_model: bool, claims_only: bool = False) -> None:
    if not skip_model:
        culture_model.train(OUT, device, minutes)
    if not claims_only:
        write_header()
    subject = load_subject(read_structure(MANIFEST), device)
    table = discover_culture.sweep(subject)
    hook, task, rate, other = discover_culture.most_selective(table)
    log(f"most selective: zeroing {hook} breaks {rate:.3f} of {task}, at most {other:.3f} of any other task")

    name = sae_name(hook)
    if claims_only:
        if name not in subject.manifest.saes:
            raise SystemExit(f"the sweep now picks {hook}, which has no SAE yet: rebuild without --claims-only")
    else:
        summary = train_splice_sae(subject, hook, device)
        log(f"SAE on {hook}: {summary}")
        folder = OUT / f"sae-{name}"
        record = json.loads((OUT / "training.json").read_text())
        update_manifest(MANIFEST, {
            "training": training_table(record, sae_config=json.dumps(SAE), sae_summary=json.dumps(summary)),
            f"saes.{name}": {"loader": "sae_lens", "hook": hook, "path": f"../culture-tiny/sae-{name}",
                             "sha256": {"cfg.json": sources.sha256_of(folder / "cfg.json"),
                                        "sae_weights.safetensors": sources.sha256_of(folder / "sae_weights.safetensors")}}})

    subject = load_subject(read_structure(MANIFEST), device)
    n = DATA["size"]
    solved = f.measure_solved_rate(subject, f.SolvedRate(min_rate=0.0), "selection")
    bounds = solved_bounds({t: r.rate for t, r in solved.items()}, {t: r.counted for t, r in solved.items()})
    splice = f.measure_splice(subject, f.SAESpliceRestores(name, task, 0.0, 1.0), "selection")
    if splice.n_broken == 0:
        raise SystemExit(f"zeroing {hook} breaks no {task} puzzle on the selection split: no splice claim can be made")
    change = max(abs(e.value) for e in splice.clean_change.values())
    width = max(e.hi - e.lo for e in splice.clean_change.values())
    ablation, ablation_comment = discover_culture.claim_table(hook, task, table[hook], {t: r.counted for t, r in solved.items()})
    ablation["puzzles"] = "determined"
    not_learned = ", ".join(t for t in TASKS if t not in bounds) or "none"
    update_manifest(MANIFEST, {
        "claims.solved_rate": {"tasks": list(bounds), "min_rate": round(min(bounds.values()), 4), "min_rate_by_task": bounds,
                               "max_rate": 1.0, "puzzles": "determined"},
        "claims.ablation_breaks_one_task": ablation,
        "claims.sae_splice_restores": {"sae": name, "task": task,
                                       "min_restored": round(splice.restored.value * POLICY["min_restored_fraction_of_selection"], 4),
                                       "max_clean_change": round(change + width, 4), "puzzles": "determined"},
    }, comments={
        "claims.solved_rate": "written by `verify build-culture-tiny` from the selection split; thresholds follow its POLICY\n"
                              f"selection split (determined puzzles of {n} per task): "
                              + " ".join(f"{t}={r.rate.value:.3f} ({r.counted})" for t, r in solved.items())
                              + f"\nnot learned (left out): {not_learned}",
        "claims.ablation_breaks_one_task": ablation_comment,
        "claims.sae_splice_restores": f"selection split: {round(splice.restored.value * splice.n_broken)} of {splice.n_broken} "
                                      f"ablation-broken {task} puzzles restored; largest |splice - clean| = {change:.4f},\n"
                                      f"largest 95% interval width of a task's change = {width:.4f}; max_clean_change is their sum",
    })
    if not claims_only:  # a new SAE: its fidelity floors, measured through the claims that read it
        fidelity_floors.main([str(MANIFEST), "--device", device, "--write"])
    log(f"wrote {MANIFEST}")


def main(argv: list[str] | None = None) -> None:
    build_command(__doc__, OUT, build, argv)


if __name__ == "__main__":
    main()
