"""Build the embedded subject `othello-tiny` from nothing: model, SAE, manifest, discovery.

    python -m verify.train.othello_tiny [--device auto] [--minutes 60] [--skip-model]

1. trains the model (verify.train.othello_model) into fixtures/othello-tiny/;
2. trains an sae_lens SAE on SAE_HOOK from activations on freshly generated games;
3. writes fixtures/subjects/othello-tiny.toml with files, sha256 hashes, seeds and training record;
4. runs discovery (verify.train.discover_othello) on the selection split, which adds the claims.
Every step is seeded; progress goes to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from verify import othello, sources
from verify.loaders import load_hooked_transformer
from verify.train import discover_othello, othello_model
from verify.train.checkpoint import build_command
from verify.train.sae import train_sae

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "fixtures" / "othello-tiny"
MANIFEST = ROOT / "fixtures" / "subjects" / "othello-tiny.toml"
SAE_HOOK = "blocks.3.hook_resid_pre"
SAE = {"d_sae": 512, "l1_coefficient": 8.0, "training_tokens": 3_000_000, "games": 12_000, "games_seed": 3, "seed": 0}
DATA = {"selection_seed": 100, "confirmation_seed": 101, "size": 1000}

HEADER = """\
# othello-tiny: an Othello-GPT and SAE trained by this repository (README: "Embedded subjects").
# Rebuilt by `python -m verify.train.othello_tiny`, which rewrites this file.
name = "othello-tiny"
domain = "othello"
description = "4-layer, 128-wide Othello-GPT on synthetic random-legal games; SAE on {hook}"

[model]
loader = "hooked_transformer"
weights = "../othello-tiny/model.safetensors"
config = "../othello-tiny/model_config.json"
sha256 = {{ weights = "{w_hash}", config = "{c_hash}" }}

[saes.resid]
loader = "sae_lens"
hook = "{hook}"
path = "../othello-tiny/sae-resid"
sha256 = {{ "cfg.json" = "{cfg_hash}", "sae_weights.safetensors" = "{sae_hash}" }}

[data]
source = "othello-synthetic"
selection_seed = {selection_seed}
confirmation_seed = {confirmation_seed}
size = {size}

[training]
model_record = "../othello-tiny/training.json"
model_legal_top1_heldout = {legal}
sae_config = '{sae_config}'
sae_summary = '{sae_summary}'

"""


def build(device: str, minutes: float, skip_model: bool) -> None:
    if not skip_model:
        othello_model.train(OUT, device, minutes)
    model = load_hooked_transformer(OUT / "model.safetensors", OUT / "model_config.json", device)
    games = othello.generate_games(SAE["games"], SAE["games_seed"])
    tokens = torch.from_numpy(games.tokens[:, : othello.MODEL_INPUT_LENGTH])
    summary = train_sae(model, tokens, SAE_HOOK, OUT / "sae-resid", d_sae=SAE["d_sae"], l1_coefficient=SAE["l1_coefficient"],
                        training_tokens=SAE["training_tokens"], seed=SAE["seed"], device=device)
    record = json.loads((OUT / "training.json").read_text())
    MANIFEST.write_text(HEADER.format(
        hook=SAE_HOOK, legal=record["history"][-1]["legal_top1"],
        w_hash=sources.sha256_of(OUT / "model.safetensors"), c_hash=sources.sha256_of(OUT / "model_config.json"),
        cfg_hash=sources.sha256_of(OUT / "sae-resid" / "cfg.json"),
        sae_hash=sources.sha256_of(OUT / "sae-resid" / "sae_weights.safetensors"),
        sae_config=json.dumps(SAE), sae_summary=json.dumps(summary), **DATA,
    ))
    discover_othello.write_claims(MANIFEST, discover_othello.discover(MANIFEST, device))


def main(argv: list[str] | None = None) -> None:
    build_command(__doc__, OUT, build, argv)


if __name__ == "__main__":
    main()
