"""Build the embedded subject `othello-tiny` from nothing: model, SAE, manifest, discovery.

    verify build-othello-tiny [--device auto] [--minutes 60] [--skip-model]

1. trains the model (verify.cli.train_othello_model) into fixtures/othello-tiny/;
2. trains an sae_lens SAE on SAE_HOOK from activations on freshly generated games;
3. writes fixtures/subjects/othello-tiny.toml with files, sha256 hashes, seeds and training record;
4. runs discovery (verify.cli.discover_othello) on the selection split, which adds the claims.
Every step is seeded; progress goes to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from verify import sources
from verify.othello import rules as othello
from verify.loaders import load_hooked_transformer
from verify.cli import discover_othello, fidelity_floors
from verify.cli import train_othello_model as othello_model
from verify.cli.checkpoint import build_command
from verify.cli.manifest_tables import update_manifest
from verify.cli.sae import train_sae

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "fixtures" / "othello-tiny"
MANIFEST = ROOT / "fixtures" / "subjects" / "othello-tiny.toml"
SAE_HOOK = "blocks.3.hook_resid_pre"
SAE = {"d_sae": 512, "l1_coefficient": 8.0, "training_tokens": 3_000_000, "games": 12_000, "games_seed": 3, "seed": 0}
DATA = {"selection_seed": 100, "confirmation_seed": 101, "size": 1000}

HEADER = """\
othello-tiny: an Othello-GPT and SAE trained by this repository (README: "Embedded subjects").
Rebuilt by `verify build-othello-tiny`, which rewrites the tables it owns and keeps any other."""


def build(device: str, minutes: float, skip_model: bool, claims_only: bool = False) -> None:
    if claims_only:
        discover_othello.write_claims(MANIFEST, discover_othello.discover(MANIFEST, device))
        return
    if not skip_model:
        othello_model.train(OUT, device, minutes)
    model = load_hooked_transformer(OUT / "model.safetensors", OUT / "model_config.json", device)
    games = othello.generate_games(SAE["games"], SAE["games_seed"])
    tokens = torch.from_numpy(games.tokens[:, : othello.MODEL_INPUT_LENGTH])
    summary = train_sae(model, tokens, SAE_HOOK, OUT / "sae-resid", d_sae=SAE["d_sae"], l1_coefficient=SAE["l1_coefficient"],
                        training_tokens=SAE["training_tokens"], seed=SAE["seed"], device=device)
    record = json.loads((OUT / "training.json").read_text())
    sae_files = {name: sources.sha256_of(OUT / "sae-resid" / name) for name in ("cfg.json", "sae_weights.safetensors")}
    update_manifest(MANIFEST, header=HEADER, top={
        "name": "othello-tiny", "domain": "othello",
        "description": f"4-layer, 128-wide Othello-GPT on synthetic random-legal games; SAE on {SAE_HOOK}"}, tables={
        "model": {"loader": "hooked_transformer", "weights": "../othello-tiny/model.safetensors",
                  "config": "../othello-tiny/model_config.json",
                  "sha256": {"weights": sources.sha256_of(OUT / "model.safetensors"), "config": sources.sha256_of(OUT / "model_config.json")}},
        "saes.resid": {"loader": "sae_lens", "hook": SAE_HOOK, "path": "../othello-tiny/sae-resid", "sha256": sae_files},
        "data": {"source": "othello-synthetic", **DATA},
        "training": {"model_record": "../othello-tiny/training.json", "model_legal_top1_heldout": record["history"][-1]["legal_top1"],
                     "sae_config": json.dumps(SAE), "sae_summary": json.dumps(summary)},
    })
    discover_othello.write_claims(MANIFEST, discover_othello.discover(MANIFEST, device))
    fidelity_floors.main([str(MANIFEST), "--device", device, "--write"])  # the new SAE's floors, through the claims


def main(argv: list[str] | None = None) -> None:
    build_command(__doc__, OUT, build, argv)


if __name__ == "__main__":
    main()
