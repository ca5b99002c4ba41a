"""Generic findings about any TransformerLens model on token sequences (the tokens domain), re-checked
on every subject that declares them, e.g. induction-tiny's previous-token and induction heads."""

import pytest


@pytest.mark.claim("attention_pattern")
def test_attention_pattern(measurement, params, claim, verdict):
    """Head L.H attends to the pattern's key (previous token, induction target, duplicate, first token)
    in the declared range, above the same head of a randomly initialised model, ranked in its layer."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("ablation_effect")
def test_ablation_effect(measurement, params, claim, verdict):
    """Ablating the hook (or one head) costs the target positions at least min_effect and moves the
    control positions by at most max_control_effect."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("sae_quality")
def test_sae_quality(measurement, params, claim, verdict):
    """The SAE's explained variance, loss recovered, L0 and dead-feature share lie in their bounds."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("feature_tracks_label")
def test_feature_tracks_label(measurement, params, claim, verdict):
    """The SAE feature's activation tracks the token-level label, above the best random-SAE feature."""
    verdict(claim.checks(measurement, params))
