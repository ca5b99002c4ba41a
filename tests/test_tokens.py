"""The tokens domain: its data sources and position sets, the Layer / Head parameter kinds, and each
generic claim on induction-tiny: it holds, fails when its bound is moved past the measured value,
and fails on the negative controls (a model of the same shape trained on sequences that never
repeat, a randomly initialised model)."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, SUBJECTS_DIR
from verify import registry, timing
from verify.interventions import random_like
from verify.loaders import load_hooked_transformer
from verify.manifest import ManifestError, claim_name
from verify.subjects import load_subject, read_manifest
from verify.tokens import data as token_data
from verify.tokens import findings as f
from verify.verdicts import Check, failures

INDUCTION_TINY = SUBJECTS_DIR / "induction-tiny.toml"
CONTROL = ROOT / "tests" / "fixtures" / "induction-tiny-norepeat"
OPTS = token_data.RepeatedTokens(vocab_size=64)


# --- data ---------------------------------------------------------------------------------------------

def test_synthetic_sequences_repeat_their_segment_at_varying_offsets():
    data = token_data.generate(OPTS, 200, seed=5)
    assert data.tokens.shape == (200, OPTS.length) and (data.tokens[:, 0] == OPTS.bos).all()
    first, repeat = data.sets["first"], data.sets["repeat"]
    n = first.sum(1)
    assert n.min() >= OPTS.min_length and n.max() <= OPTS.max_length and len(set(n)) > 3
    starts = first.argmax(1)
    assert len(set(starts)) > 3  # the copy is at no fixed position
    for row, s, k in zip(data.tokens, starts, n):
        assert (row[s + k : s + 2 * k] == row[s : s + k]).all()
    # the only tokens seen earlier in a sequence are the second copy's
    seen = token_data.seen_before(data.tokens)
    assert (seen.sum(1) == n).all() and not (seen & first).any() and (repeat <= seen).all()
    assert (token_data.generate(OPTS, 200, seed=5).tokens == data.tokens).all()
    assert (token_data.generate(OPTS, 50, seed=5).tokens == data.tokens[:50]).all()  # a prefix of the stream


def test_no_repeat_sequences_hold_no_token_twice():
    data = token_data.generate(dataclasses.replace(OPTS, repeat=False), 100, seed=1)
    assert not token_data.seen_before(data.tokens).any()


def test_confirmation_split_shares_no_sequence_with_selection():
    sel = token_data.synthetic_split(OPTS, 300, 1, None)
    conf = token_data.synthetic_split(OPTS, 300, 2, sel)
    rows = {r.tobytes() for r in sel.tokens}
    assert len(rows) == 300 and not any(r.tobytes() in rows for r in conf.tokens)


def test_pattern_keys():
    tokens = np.array([[0, 5, 6, 7, 5, 6, 7]])
    key, defined = f.pattern_keys(tokens, "induction")
    assert defined[0].tolist() == [False, False, False, False, True, True, True]
    assert key[0, 4:].tolist() == [2, 3, 4]
    key, _ = f.pattern_keys(tokens, "duplicate_token")
    assert key[0, 4:].tolist() == [1, 2, 3]
    key, defined = f.pattern_keys(tokens, "previous_token")
    assert key[0, 1:].tolist() == [0, 1, 2, 3, 4, 5] and not defined[0, 0]


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "save_to_disk"])
def test_dataset_source_reads_input_ids_and_boolean_columns(tmp_path, kind):
    import datasets

    data = token_data.generate(OPTS, 40, seed=3)
    ds = datasets.Dataset.from_dict({"input_ids": data.tokens.tolist(), "copy": data.sets["repeat"].tolist()})
    path = tmp_path / {"jsonl": "d.jsonl", "parquet": "d.parquet", "save_to_disk": "d"}[kind]
    getattr(ds, {"jsonl": "to_json", "parquet": "to_parquet", "save_to_disk": "save_to_disk"}[kind])(str(path))
    opened = token_data.read_dataset(path)
    sel, conf = token_data.dataset_split(opened, 20, "selection"), token_data.dataset_split(opened, 20, "confirmation")
    assert (conf.tokens == data.tokens[20:]).all() and (sel.positions("copy") == data.sets["repeat"][:20]).all()
    with pytest.raises(ValueError, match="no position set 'nope'"):
        sel.positions("nope")
    with pytest.raises(ValueError, match="needs 60"):
        token_data.dataset_split(opened, 30, "selection")


def test_dataset_source_refuses_overlapping_splits():
    import datasets

    rows = token_data.generate(OPTS, 5, seed=3).tokens.tolist()
    with pytest.raises(ValueError, match="5 confirmation rows are also selection rows"):
        token_data.dataset_split(datasets.Dataset.from_dict({"input_ids": rows + rows}), 5, "confirmation")


# --- manifests ------------------------------------------------------------------------------------------

def manifest_with(tmp_path: Path, claims: str, data: str = "") -> Path:
    text = INDUCTION_TINY.read_text()
    text = text[: text.index("[claims.")] if "[claims." in text else text
    text = text.replace('"../induction-tiny/', f'"{(ROOT / "fixtures" / "induction-tiny").as_posix()}/')
    path = tmp_path / "m.toml"
    path.write_text(text.replace("[data]\n", "[data]\n" + data) + "\n" + claims)
    return path


@pytest.mark.parametrize("claims, message", [
    ("[claims.attention_pattern]\nlayer = 1\nhead = 9\npattern = 'induction'\nmin_score = 0.1\n",
     r"\[claims.attention_pattern\] head: head 9 is outside the model's 4 heads \(0..3\)"),
    ("[claims.attention_pattern]\nlayer = 2\nhead = 0\npattern = 'induction'\nmin_score = 0.1\n",
     r"\[claims.attention_pattern\] layer: layer 2 is outside the model's 2 layers \(0..1\)"),
    ("[claims.attention_pattern]\nlayer = 1\nhead = 0\npattern = 'induktion'\nmin_score = 0.1\n",
     r"\[claims.attention_pattern\]: pattern: 'induktion' is not one of"),
    ("[claims.ablation_effect]\nhook = 'blocks.1.hook_attn_out'\nhead = 1\nmin_effect = 1.0\nmax_control_effect = 0.1\n",
     r"\[claims.ablation_effect\]: head: 'blocks.1.hook_attn_out' has no head axis"),
    ("[claims.ablation_effect]\nhook = 'blocks.1.attn.hook_z'\nhead = 4\nmin_effect = 1.0\nmax_control_effect = 0.1\n",
     r"head: head 4 is outside the model's 4 heads \(0..3 or -1 for the whole hook\)"),
])
def test_bad_claim_tables_are_one_line_manifest_errors(tmp_path, claims, message):
    path = manifest_with(tmp_path, claims)
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_bad_data_keys_are_manifest_errors(tmp_path):
    path = manifest_with(tmp_path, "", data="")
    path.write_text(path.read_text().replace("vocab_size = 64", "vocab_size = 20"))
    with pytest.raises(ManifestError, match=r"\[data\]: vocab_size 20 leaves 19 tokens besides BOS"):
        read_manifest(path)


# --- the claims on induction-tiny ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def induction_tiny():
    return load_subject(read_manifest(INDUCTION_TINY), "cpu")


@pytest.fixture(scope="module")
def control(induction_tiny):
    m = induction_tiny
    model = load_hooked_transformer(CONTROL / "model.safetensors", CONTROL / "model_config.json", "cpu").requires_grad_(False)
    return m.with_weights(model=model)


def declared(subject):
    """(claim table key, registered claim name, parameters) of every claim the manifest declares."""
    return [(key, claim_name(key), params) for key, params in subject.manifest.claims.items()]


def failed(subject, name, params) -> list[str]:
    return [str(c) for c in failures(registry.get_claim(name).check(subject, params))]


def test_every_claim_holds_on_induction_tiny(induction_tiny):
    m = induction_tiny.manifest
    assert {key for key, _, _ in declared(induction_tiny)} == {
        "attention_pattern.previous_token_0_1", "attention_pattern.induction_1_0", "ablation_effect", "sae_quality",
        "feature_tracks_label"}
    assert set(m.expected_absent) == set()  # the TopK SAE's feature 23 tracks seen_before (README)
    for key, name, params in declared(induction_tiny):
        assert failed(induction_tiny, name, params) == [], key


def test_each_claim_fails_when_its_bound_is_moved_past_the_measured_value(induction_tiny):
    """For every bound of every declared claim: the parameter set just past the value its check
    measured (a lower bound above it, an upper bound below it) fails the claim."""
    moved_fields = {}
    for key, name, params in declared(induction_tiny):
        claim = registry.get_claim(name)
        measured = claim.measure_on(induction_tiny, params)
        checks = [c for c in claim.checks(measured, params) if isinstance(c, Check) and not c.what.startswith("precondition")]
        moved_fields[key] = []
        for field in (fl.name for fl in dataclasses.fields(params) if fl.name.startswith(("min_", "max_")) and fl.name != "min_cases"):
            value = getattr(params, field)
            lower = field.startswith("min_")
            check = next((c for c in checks if (c.lo if lower else c.hi) == value), None)
            if field == "max_control_effect":  # a two-sided bound: |change| <= it
                check = next(c for c in checks if c.hi == value)
                past = abs(check.estimate.value) * 0.99
            elif check is None or math.isinf(value):
                continue
            else:
                past = check.estimate.value + (1e-3 if lower else -1e-3)
            if field == "max_rank":
                past = check.estimate.value - 1
                if past < 1:
                    continue  # rank 1 cannot be beaten
            moved = dataclasses.replace(params, **{field: type(value)(past)})
            assert failures(claim.checks(measured, moved)), (key, field, past)
            moved_fields[key].append(field)
    assert moved_fields == {
        "attention_pattern.previous_token_0_1": ["min_score", "max_score", "min_margin_over_random"],
        "attention_pattern.induction_1_0": ["min_score", "max_score", "min_margin_over_random"],
        "ablation_effect": ["min_effect", "max_control_effect"],
        "sae_quality": ["min_explained_variance", "min_loss_recovered", "max_l0", "max_dead_fraction", "max_explained_variance",
                        "max_loss_recovered", "min_l0"],
        "feature_tracks_label": ["min_correlation", "max_correlation", "min_auroc", "min_margin_over_random"],
    }


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_every_ablation_of_the_induction_head_costs_the_repeats_only(induction_tiny, ablation):
    """Zero 0.69, mean 1.28, resample 1.77 nats on the repeated tokens; at most 0.035 on the first copy."""
    p = dataclasses.replace(induction_tiny.manifest.claims["ablation_effect"], ablation=ablation)
    assert failed(induction_tiny, "ablation_effect", p) == []
    accuracy = f.measure_ablation(induction_tiny, dataclasses.replace(p, metric="accuracy"))
    assert accuracy.target.lo > 0.1 and abs(accuracy.control.value) < 0.01  # top-1 drops on the repeats only


def test_control_model_fails_the_induction_claims(control):
    """The same shape trained as long on sequences in which no token repeats: no induction head."""
    m = control.manifest
    induction = m.claims["attention_pattern.induction_1_0"]
    assert failed(control, "attention_pattern", induction)
    assert failed(control, "ablation_effect", m.claims["ablation_effect"])


def test_feature_claim_fails_on_the_controls(induction_tiny, control):
    """Feature 23 fires on 99% of the confirmation split's seen_before positions (r 0.95); read by the
    same SAE on the no-repeat control's activations r 0.31, on a random model's -0.04, and the same
    feature of a random SAE r 0.17: each fails its correlation, AUROC and margin checks. (The claim's
    fidelity precondition is not measurable on the control: zeroing its hook costs 0.04 of its loss.)"""
    p = induction_tiny.manifest.claims["feature_tracks_label"]
    controls = {"no-repeat model": control, "random model": induction_tiny.with_weights(model=f.random_model(induction_tiny, 3)),
                "random SAE": induction_tiny.with_weights(saes={p.sae: random_like(induction_tiny.saes[p.sae], 5)})}
    for name, subject in controls.items():
        m = f.measure_feature_label(subject, p)
        assert m.correlation.hi < p.min_correlation and m.auroc < p.min_auroc and m.margin.hi < p.min_margin_over_random, name
        assert len(failures(f.judge_feature_label(m, p))) == 3, name


def test_random_model_fails_the_head_claims(induction_tiny):
    rand = induction_tiny.with_weights(model=f.random_model(induction_tiny, 3))
    for key, name, params in declared(induction_tiny):
        if name in ("attention_pattern", "ablation_effect"):
            assert failed(rand, name, params), key


# --- training induction-tiny's SAE ---------------------------------------------------------------------------

def test_sae_only_keeps_only_a_model_trained_with_this_config(tmp_path):
    """`train-induction-model --sae-only` retrains the SAE on the model in --out only when that
    model's record is this CONFIG's (but for the SAE) and not the no-repeat control's."""
    from verify.cli import train_induction_model as t

    record = json.loads((ROOT / "fixtures" / "induction-tiny" / "training.json").read_text())
    assert t.kept_model_record(ROOT / "fixtures" / "induction-tiny") == record
    for name, change in (("other lr", lambda r: r["config"].update(lr=1e-3)),
                         ("control", lambda r: r["data"].update(repeat=False))):
        bad = json.loads(json.dumps(record))
        change(bad)
        (tmp_path / name).mkdir()
        (tmp_path / name / "training.json").write_text(json.dumps(bad))
        with pytest.raises(SystemExit, match=rf"{name}/training.json: config: the kept model was trained with other settings"):
            t.kept_model_record(tmp_path / name)
    with pytest.raises(SystemExit, match="training.json: no training record of a model to keep"):
        t.kept_model_record(tmp_path / "missing")


def test_topk_sae_trains_and_loads(tmp_path, induction_tiny):
    """verify.cli.sae's TopK option: sae_lens' TopK SAE, saved and read back by the sae_lens loader,
    k features active per token; the decoder bias started at the activations' mean stays near it."""
    from verify.activations import hook_activations
    from verify.cli.sae import train_sae
    from verify.loaders.sae_lens_dir import load_sae_lens

    hook = "blocks.1.hook_attn_out"
    tokens = torch.from_numpy(token_data.generate(OPTS, 128, seed=9).tokens)
    summary = train_sae(induction_tiny.model, tokens, hook, tmp_path / "sae", d_sae=32, architecture="topk", k=4,
                        b_dec_init="mean", dead_feature_window=10, training_tokens=20_000, batch_size=512, seed=1)
    sae = load_sae_lens(tmp_path / "sae", "cpu")
    assert type(sae).__name__ == "TopKSAE" and sae.cfg.d_sae == 32 and summary["l0"] == 4.0
    acts = hook_activations(induction_tiny.model, tokens, hook).reshape(-1, 64)
    assert ((f.sae_feature_acts(sae, acts) > 0).sum(-1) <= 4).all()
    assert (sae.b_dec - acts.mean(0)).norm() < 0.2 * acts.mean(0).norm()
    with pytest.raises(ValueError, match="a topk SAE needs k"):
        train_sae(induction_tiny.model, tokens, hook, tmp_path / "x", d_sae=32, architecture="topk", training_tokens=1024)


def test_named_instances_are_their_own_claims(tmp_path):
    path = manifest_with(tmp_path, "[claims.attention_pattern.a]\nlayer = 0\nhead = 1\npattern = 'previous_token'\nmin_score = 0.1\n"
                                   "[claims.attention_pattern.b]\nlayer = 1\nhead = 0\npattern = 'induction'\nmin_score = 0.5\n"
                                   "max_drift = 0.01\n")
    m = read_manifest(path)
    assert m.claims["attention_pattern.a"].layer == 0 and m.claims["attention_pattern.b"].pattern == "induction"
    assert m.max_drift == {"attention_pattern.b": 0.01}
    path.write_text(path.read_text().replace("head = 0", "head = 7"))
    with pytest.raises(ManifestError, match=r"\[claims.attention_pattern.b\] head: head 7 is outside"):
        read_manifest(path)


# --- the README's DataSource example ----------------------------------------------------------------------------

def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    return section[section.index("```python\n") + len("```python\n"): section.index("\n```\n")]


def test_readme_data_source_example_runs(tmp_path, monkeypatch):
    """The README's new-domain example, as written there, registers a source, a domain and a claim that
    a manifest with domain = "counting" declares; the claim is measured on induction-tiny's weights."""
    for name in ("_CLAIMS", "_SOURCES", "_DOMAINS"):  # registered for this test only
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))
    registry.claims()
    exec(compile(readme_block("### A new domain: `DataSource`"), "README.md", "exec"), {"__name__": "readme_example"})
    weights = (ROOT / "fixtures" / "induction-tiny").as_posix()
    path = tmp_path / "counting.toml"
    path.write_text(f'name = "counting"\ndomain = "counting"\n[model]\nloader = "hooked_transformer"\n'
                    f'weights = "{weights}/model.safetensors"\nconfig = "{weights}/model_config.json"\n'
                    '[data]\nsource = "counting"\nsize = 32\nselection_seed = 1\nconfirmation_seed = 2\nlength = 12\n'
                    '[claims.next_token_loss]\nmax_loss = 10.0\n')
    subject = load_subject(read_manifest(path), "cpu")
    with timing.collect() as seconds:  # as the plugin collects a claim's time: its stages are counted, not "other"
        checks = registry.get_claim("next_token_loss").check(subject, subject.manifest.claims["next_token_loss"])
    assert len(checks) == 1 and checks[0].passed and 0 < checks[0].estimate.value < 10
    assert seconds.get("data", 0) > 0 and seconds.get("forward", 0) > 0, seconds
    too_tight = registry.get_claim("next_token_loss").params(max_loss=checks[0].estimate.value - 1e-3)
    assert failures(registry.get_claim("next_token_loss").check(subject, too_tight))
    path.write_text(path.read_text().replace("length = 12", "lenght = 12"))
    with pytest.raises(ManifestError, match=r"\[data\]: unknown key 'lenght'"):
        read_manifest(path)


# --- a project of manifests alone ----------------------------------------------------------------------------------

def test_a_project_of_manifests_alone_runs_with_plain_pytest(pytester):
    """The README's "Pin a finding about your own model" manifest, with a pytest.ini and nothing else:
    plain `pytest` collects its claims from the manifest (named instances as their own tests), each
    holds; a bound moved past its measured value fails that claim; head 9 is a one-line usage error."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Pin a finding about your own model"):]
    manifest = section[section.index("```toml\n") + len("```toml\n"): section.index("\n```\n")]
    manifest = manifest.replace('"model/', f'"{(ROOT / "fixtures" / "induction-tiny").as_posix()}/')
    pytester.makefile(".ini", pytest="[pytest]\nverify_subjects_dir = subjects\n")
    (pytester.path / "subjects").mkdir()
    path = pytester.path / "subjects" / "mine.toml"
    path.write_text(manifest)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["subjects/mine.toml::test_attention_pattern[[]my-model/induction_1_0[]]",
                                 "*PASS head 1.0 mean attention to the induction target*"])
    path.write_text(manifest.replace("min_effect = 0.32", "min_effect = 0.8"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3, failed=1)
    path.write_text(manifest.replace("head = 0\npattern", "head = 9\npattern"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *subjects/mine.toml: [[]claims.attention_pattern.induction_1_0[]] head: head 9 is outside "
                                 "the model's 4 heads (0..3)"])
