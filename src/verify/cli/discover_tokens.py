"""Discovery for a tokens subject: choose the previous-token head, the induction head and an
induction feature on the *selection* split and write the claims, with thresholds, into its manifest.

    verify discover-tokens fixtures/subjects/induction-tiny.toml [--write]

On the selection split: the previous-token head is the layer-0 head attending most to the previous
token, the induction head the head of the last layer attending most to the induction target; the
ablation claim zero-ablates that induction head's hook_z slice (target: the repeated part, control:
the first part); the feature is the feature of the manifest's first SAE whose activation correlates
most with "the token occurred earlier in the sequence" (seen_before). Thresholds follow one written
POLICY; only the claim tables this tool owns (and the SAE's fidelity floors) are rewritten, every
other table is kept as written. The claims then confirm on the confirmation split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verify.cli.manifest_tables import set_keys, update_manifest
from verify.subjects import load_subject, read_structure
from verify.tokens import findings as f
from verify.tokens.data import split

POLICY = {
    # attention: the confirmation score within +-score_band of the selection score; the margin over the
    # random model at least half the selection margin; rank 1 in its layer, or one lower for each other
    # head whose selection score is within score_band of it
    "score_band": 0.05,
    "margin_fraction": 0.5,
    # ablation: the repeated part's loss rises by at least half the selection rise; the first part's
    # moves by at most its selection change plus control_slack, either way
    "effect_fraction": 0.5,
    "control_slack": 0.05,
    # SAE: explained variance and loss recovered within +-sae_band of the selection values; L0 within
    # a factor l0_factor either way; dead share at most the selection share plus dead_slack; fidelity
    # floors (what every claim reading the SAE rests on) at the selection value - floor_gap
    "sae_band": 0.05,
    "l0_factor": 1.5,
    "dead_slack": 0.05,
    "floor_gap": 0.1,
    # feature: r within +-correlation_band, AUROC >= selection - auroc_slack, margin >= half the selection margin
    "correlation_band": 0.1,
    "auroc_slack": 0.05,
    "feature_label": "seen_before",
    "min_feature_margin": 0.05,  # "tracks the label" means clearly better than a random SAE's best feature
}


def discover(manifest_path: Path, device: str = "cpu") -> tuple[dict, dict]:
    """(claim tables, comments) found on the selection split."""
    p = POLICY
    m = read_structure(manifest_path)
    subject = load_subject(m, device)
    n_layers, n_heads = subject.model.cfg.n_layers, subject.model.cfg.n_heads
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    log(f"selection split: {m.data.size} sequences (seed {m.data.selection_seed})")
    tables, comments = {}, {}
    for name, layer, pattern in (("previous_token", 0, "previous_token"), ("induction", n_layers - 1, "induction")):
        probe = f.measure_attention(subject, f.AttentionPattern(layer, 0, pattern, 0.0, max_rank=n_heads), "selection")
        head = max(range(n_heads), key=lambda h: probe.layer_scores[h])
        r = f.measure_attention(subject, f.AttentionPattern(layer, head, pattern, 0.0, max_rank=n_heads), "selection")
        log(f"{pattern}: layer {layer} heads {[round(s, 4) for s in r.layer_scores]}: head {layer}.{head} "
            f"{r.score}, random model {r.random_score}")
        tables[f"claims.attention_pattern.{name}_{layer}_{head}"] = {
            "layer": layer, "head": head, "pattern": pattern,
            "min_score": round(max(0.0, r.score.value - p["score_band"]), 4),
            "max_score": round(min(1.0, r.score.value + p["score_band"]), 4),
            "min_margin_over_random": round(r.margin.value * p["margin_fraction"], 4),
            # rank 1, or below each other head of the layer that scores within score_band of it (a tie would flip)
            "max_rank": 1 + sum(1 for h, s in enumerate(r.layer_scores) if h != head and s >= r.score.value - p["score_band"])}
        comments[f"claims.attention_pattern.{name}_{layer}_{head}"] = (
            f"written by `verify discover-tokens` on the selection split (POLICY); there: {r.score} (random model "
            f"{r.random_score.value:.4f}), layer {layer}'s heads {', '.join(f'{s:.3f}' for s in r.layer_scores)}")
        if pattern == "induction":
            induction = (layer, head)
    layer, head = induction
    probe = f.AblationEffect(f"blocks.{layer}.attn.hook_z", 0.0, 10.0, head=head)
    e = f.measure_ablation(subject, probe, "selection")
    log(f"ablation of head {layer}.{head}: repeat {e.target}, first {e.control}, random model {e.random_target}")
    tables["claims.ablation_effect"] = {
        "hook": probe.hook, "head": head, "ablation": "zero", "metric": "loss",
        "target_positions": "repeat", "control_positions": "first",
        "min_effect": round(e.target.value * p["effect_fraction"], 4),
        "max_control_effect": round(abs(e.control.value) + p["control_slack"], 4)}
    comments["claims.ablation_effect"] = (f"written by `verify discover-tokens` (POLICY); selection split: repeat {e.target}, "
                                          f"first {e.control} nats/token")
    floors = {}
    if m.saes:
        sae = next(iter(m.saes))
        ev, recovered = f.fidelity_of(subject, sae, "selection")
        floors = {"min_explained_variance": round(ev.value - p["floor_gap"], 4),
                  "min_loss_recovered": round(recovered.value - p["floor_gap"], 4)}
        q = f.measure_sae_quality(subject, f.SAEQuality(sae, 0.0, 0.0, 1e9, 1.0), "selection")
        log(f"SAE {sae}: EV {q.explained_variance}, loss recovered {q.loss_recovered}, L0 {q.l0}, dead {q.dead_fraction:.4f}")
        tables["claims.sae_quality"] = {
            "sae": sae,
            "min_explained_variance": round(q.explained_variance.value - p["sae_band"], 4),
            "max_explained_variance": round(min(1.0, q.explained_variance.value + p["sae_band"]), 4),
            "min_loss_recovered": round(q.loss_recovered.value - p["sae_band"], 4),
            "max_loss_recovered": round(q.loss_recovered.value + p["sae_band"], 4),
            "min_l0": round(q.l0.value / p["l0_factor"], 3), "max_l0": round(q.l0.value * p["l0_factor"], 3),
            "max_dead_fraction": round(min(1.0, q.dead_fraction + p["dead_slack"]), 4)}
        comments["claims.sae_quality"] = (f"written by `verify discover-tokens` (POLICY); selection split: EV {q.explained_variance.value:.4f}, "
                                          f"loss recovered {q.loss_recovered.value:.4f}, L0 {q.l0.value:.2f}, dead {q.dead_fraction:.4f}")
        data = split(subject, "selection")
        hook = m.saes[sae].hook
        feats = f.sae_feature_acts(subject.saes[sae], f.split_acts(subject, subject.model, "model", "selection", hook))
        feature = f.best_label_feature(feats, data.positions(p["feature_label"]), data.positions("all"))
        t = f.measure_feature_label(subject, f.FeatureTracksLabel(sae=sae, feature=feature, min_correlation=-1.0, label=p["feature_label"]), "selection")
        log(f"feature {feature}: r {t.correlation}, AUROC {t.auroc:.4f}, random-SAE feature {t.random_feature} {t.random_correlation}")
        tables["claims.feature_tracks_label"] = {
            "sae": sae, "feature": feature, "label": p["feature_label"],
            "min_correlation": round(max(-1.0, t.correlation.value - p["correlation_band"]), 4),
            "max_correlation": round(min(1.0, t.correlation.value + p["correlation_band"]), 4),
            "min_auroc": round(t.auroc - p["auroc_slack"], 4),
            "min_margin_over_random": round(max(p["min_feature_margin"], t.margin.value * p["margin_fraction"]), 4)}
        if t.margin.value <= 0:  # no feature beats a random SAE's best: the finding is declared absent, measured all the same
            tables["claims.feature_tracks_label"].update(expect="absent", expect_reason=(
                f"on the selection split no feature of SAE {sae} tracks {p['feature_label']} better than the best feature of a "
                f"random SAE: the best, {feature}, r {t.correlation.value:.3f} against {t.random_correlation.value:.3f}"))
        comments["claims.feature_tracks_label"] = (f"written by `verify discover-tokens` (POLICY); selection split: r {t.correlation.value:.4f}, "
                                                   f"AUROC {t.auroc:.4f}, best random-SAE feature r {t.random_correlation.value:.4f}")
    return tables, comments, floors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="write the claims into the manifest (default: print only)")
    args = parser.parse_args(argv)
    tables, comments, floors = discover(args.manifest, args.device)
    for name, table in tables.items():
        print(f"[{name}]", table)
    if args.write:
        if floors:
            set_keys(args.manifest, f"saes.{next(iter(read_structure(args.manifest).saes))}", floors)
        update_manifest(args.manifest, tables, comments=comments)


if __name__ == "__main__":
    main()
