"""feature_tracks_label on a neuron (a unit of a vector hook) as well as an SAE feature, and
sae_quality's numbers against SAELens' own evaluation code, on induction-tiny (attention-only: its
"neurons" are units of blocks.1.hook_attn_out and the residual stream)."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, SUBJECTS_DIR
from verify import fidelity, registry
from verify.fingerprint import hooks_read
from verify.manifest import ManifestError
from verify.subjects import load_subject, read_manifest
from verify.tokens import findings as f
from verify.tokens.data import split
from verify.verdicts import Check, failures

INDUCTION_TINY = SUBJECTS_DIR / "induction-tiny.toml"
HOOK = "blocks.1.hook_attn_out"


def manifest_with(tmp_path: Path, claims: str) -> Path:
    """induction-tiny's manifest, its claims replaced by `claims`, its files named by absolute path."""
    text = INDUCTION_TINY.read_text()
    text = text[: text.index("[claims.")]
    text = text.replace('"../induction-tiny/', f'"{(ROOT / "fixtures" / "induction-tiny").as_posix()}/')
    path = tmp_path / "m.toml"
    path.write_text(text + "\n" + claims)
    return path


@pytest.fixture(scope="module")
def induction_tiny():
    return load_subject(read_manifest(INDUCTION_TINY), "cpu")


def checks_of(subject, params) -> list:
    return registry.get_claim("feature_tracks_label").check(subject, params)


# --- feature_tracks_label on a neuron ---------------------------------------------------------------------------

def test_neuron_chosen_on_the_selection_split_tracks_seen_before(induction_tiny, tmp_path):
    """Unit 53 of blocks.1.hook_attn_out (the induction heads' output) is the unit that tracks
    "this token occurred earlier" best on the selection split; on the confirmation split r = 0.975,
    AUROC 0.997, against 0.165 for the best unit of a randomly initialised model. The claim declared
    in TOML holds with bounds around those values, and fails with each bound moved past its value."""
    sel = split(induction_tiny, "selection")
    acts = f.split_acts(induction_tiny, induction_tiny.model, "model", "selection", HOOK)
    assert f.best_label_feature(acts, sel.positions("seen_before"), sel.positions("all")) == 53
    path = manifest_with(tmp_path, f"[claims.feature_tracks_label]\nhook = '{HOOK}'\nneuron = 53\nlabel = 'seen_before'\n"
                                   "min_correlation = 0.93\nmax_correlation = 1.0\nmin_auroc = 0.95\nmin_margin_over_random = 0.5\n")
    subject = induction_tiny
    params = read_manifest(path).claims["feature_tracks_label"]
    assert params.sae is None and params.feature is None and (params.hook, params.neuron) == (HOOK, 53)
    checks = checks_of(subject, params)
    assert failures(checks) == []
    assert not any(c.what.startswith("precondition") for c in checks)  # no SAE is read, so no SAE fidelity
    printed = [str(c) for c in checks]
    assert printed[0].startswith(f"PASS r(neuron 53 of {HOOK} act, seen_before) over all positions")
    assert any("margin over neuron " in line and f"of {HOOK} of a randomly initialised model (seed 0)" in line for line in printed)
    measured = f.measure_feature_label(subject, params)
    assert 0.96 < measured.correlation.value < 0.99 and measured.auroc > 0.99 and measured.random_correlation.value < 0.3
    own = [c for c in checks if isinstance(c, Check)]
    moved = {"min_correlation": own[0].estimate.value + 1e-3, "max_correlation": own[0].estimate.value - 1e-3,
             "min_auroc": own[1].estimate.value + 1e-3, "min_margin_over_random": own[2].estimate.value + 1e-3}
    for field, past in moved.items():
        assert failures(registry.get_claim("feature_tracks_label").judge(measured, dataclasses.replace(params, **{field: past}))), field


def test_neuron_claim_fails_on_a_unit_that_does_not_track_and_on_a_random_model(induction_tiny):
    claim = f.FeatureTracksLabel(hook=HOOK, neuron=53, min_correlation=0.9, min_margin_over_random=0.5)
    rand = induction_tiny.with_weights(model=f.random_model(induction_tiny, 3))
    assert failures(checks_of(rand, claim))
    other = dataclasses.replace(claim, hook="blocks.0.hook_resid_post", neuron=45)  # r -0.10 with seen_before
    assert any(c.what.startswith("r(neuron 45 of blocks.0.hook_resid_post") for c in failures(checks_of(induction_tiny, other)))


def test_sae_feature_form_prints_as_before(induction_tiny):
    """The SAE-feature form measures and prints what it did before the neuron form existed (claim version 1)."""
    params = induction_tiny.manifest.claims["feature_tracks_label"]
    assert params.hook is None and params.neuron is None
    printed = [c.what for c in checks_of(induction_tiny, params)]
    assert printed[2].startswith(f"r(SAE attn1 feature {params.feature} act, seen_before) over all positions")
    assert printed[4].startswith("margin over random-SAE feature ") and registry.get_claim("feature_tracks_label").version == 1


def test_a_neuron_claim_fingerprints_its_hook(tmp_path):
    path = manifest_with(tmp_path, "[claims.feature_tracks_label]\nhook = 'blocks.0.hook_resid_post'\nneuron = 3\nmin_correlation = 0.1\n")
    assert "blocks.0.hook_resid_post" in hooks_read(read_manifest(path))


@pytest.mark.parametrize("table, message", [
    (f"sae = 'attn1'\nfeature = 8\nhook = '{HOOK}'\nneuron = 53\n", r"\]: sae, feature and hook, neuron: name one unit"),
    ("label = 'seen_before'\n", r"\]: no unit: name an SAE feature \(sae and feature\) or a neuron \(hook and neuron\)"),
    ("sae = 'attn1'\n", r"\]: feature: missing; sae and feature name the unit together"),
    ("neuron = 3\n", r"\]: hook: missing; hook and neuron name the unit together"),
    (f"hook = '{HOOK}'\nneuron = 64\n", rf"\] neuron: index 64 is outside the 64 units of {HOOK} \(0..63\)"),
    ("hook = 'blocks.1.hook_atn_out'\nneuron = 3\n", r"\] hook: the model has no hook point 'blocks.1.hook_atn_out'"),
    ("hook = 'blocks.1.attn.hook_pattern'\nneuron = 3\n", r"\] hook: 'blocks.1.attn.hook_pattern' has shape .* not one vector per position"),
    ("sae = 'attn1'\nfeature = 128\n", r"\] feature: feature 128 is outside the SAE's 128 features \(0..127\)"),
    ("sae = 'attn2'\nfeature = 3\n", r"\] sae: 'attn2' is not declared under \[saes\]"),
])
def test_unit_forms_are_checked_at_collection(tmp_path, table, message):
    """Exactly one of the two forms, each checked against the model's config or the SAE's width: a
    one-line manifest error naming the file and field otherwise."""
    path = manifest_with(tmp_path, f"[claims.feature_tracks_label]\n{table}min_correlation = 0.1\n")
    with pytest.raises(ManifestError, match=r"\[claims.feature_tracks_label" + message) as err:
        read_manifest(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_min_correlation_is_still_required(tmp_path):
    path = manifest_with(tmp_path, f"[claims.feature_tracks_label]\nhook = '{HOOK}'\nneuron = 3\n")
    with pytest.raises(ManifestError, match=r"\[claims.feature_tracks_label\]: missing key 'min_correlation'"):
        read_manifest(path)


# --- sae_quality against SAELens' own evaluation code --------------------------------------------------------------

class TokenBatches:
    """What SAELens' evals read from their ActivationsStore (which streams a language-model dataset):
    token batches, here a split's sequences in order, every one once."""

    def __init__(self, tokens: torch.Tensor):
        self.tokens, self.start = tokens, 0

    def get_batch_tokens(self, batch_size: int) -> torch.Tensor:
        batch = self.tokens[self.start : self.start + batch_size]
        self.start += batch_size
        return batch


def sae_lens_sparsity_and_variance(model, sae, hook: str, tokens: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """SAELens' own explained variance, L0 and share of features that never fire on `tokens`, every
    position, by sae_lens.evals.get_sparsity_and_variance_metrics (whole-split numbers, from a forward
    of its own: the claim does not run it, this test checks the claim's numbers against it)."""
    from sae_lens.evals import get_sparsity_and_variance_metrics
    from sae_lens.training.activation_scaler import ActivationScaler

    assert sae.cfg.metadata.hook_name == hook  # SAELens reads the hook from the SAE's config
    metrics, per_feature = get_sparsity_and_variance_metrics(
        sae, model, TokenBatches(tokens), ActivationScaler(), n_batches=math.ceil(len(tokens) / batch_size), compute_l2_norms=False,
        compute_sparsity_metrics=True, compute_variance_metrics=True, compute_featurewise_density_statistics=True,
        eval_batch_size_prompts=batch_size, model_kwargs={}, ignore_tokens=None)
    dead = float(np.mean(np.asarray(per_feature["feature_density"]) == 0))
    return {"explained_variance": metrics["explained_variance"], "l0": metrics["l0"], "dead_fraction": dead}


def test_sae_quality_numbers_agree_with_sae_lens_evals(induction_tiny):
    """Loss recovered is computed from SAELens' get_recons_loss (per-sequence sums of its per-token
    losses, so our intervals); explained variance, L0 and the dead share are ours (per-sequence
    pieces), checked here against SAELens' get_sparsity_and_variance_metrics on the same tokens. Measured
    on induction-tiny's confirmation split (its TopK SAE): loss recovered 0.99465281 through SAELens
    and through verify.fidelity's own forward passes (equal to the last bit); explained variance
    0.9743313952 (ours) against 0.9743313949 (SAELens'); L0 8 and 8; dead share 4/128 and 4/128. The
    dense L1 SAE it replaced agreed as closely (loss recovered within 3e-9, EV 5e-8, L0 2e-6)."""
    s = induction_tiny
    spec, sae = s.manifest.saes["attn1"], s.saes["attn1"]
    tokens = f.input_tokens(s, split(s, "confirmation"))
    measured = registry.get_claim("sae_quality").measure_on(s, s.manifest.claims["sae_quality"]).value
    ours = fidelity.loss_recovered(lambda hooks: fidelity.summed_cross_entropy(s.model, tokens, tokens[:, 1:], slice(0, -1), hooks),
                                   spec.hook, sae)
    assert abs(measured.loss_recovered.value - ours.value) < 1e-6
    assert abs(measured.loss_recovered.lo - ours.lo) < 1e-6 and abs(measured.loss_recovered.hi - ours.hi) < 1e-6
    theirs = sae_lens_sparsity_and_variance(s.model, sae, spec.hook, tokens)
    assert abs(theirs["explained_variance"] - measured.explained_variance.value) < 1e-6
    assert abs(theirs["l0"] - measured.l0.value) < 1e-4 and theirs["dead_fraction"] == measured.dead_fraction


def test_loss_recovered_through_sae_lens_keeps_the_zero_ablation_guard(induction_tiny):
    """On a randomly initialised model zeroing the hook barely moves the loss: loss recovered is not
    measurable, as verify.fidelity v2 rules, whoever computed the losses."""
    rand = induction_tiny.with_weights(model=f.random_model(induction_tiny, 3))
    with pytest.raises(ValueError, match="loss recovered on blocks.1.hook_attn_out is not measurable"):
        f.fidelity_of(rand, "attn1")
