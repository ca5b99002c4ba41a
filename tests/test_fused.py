"""verify.fused: the fused attention and LayerNorm forward agrees with TransformerLens' on every embedded
subject, and wherever a hook needs TransformerLens' own code (or a call uses what the fused code does not
implement) it is exactly that code that runs.

Tolerance: |fused - TransformerLens| <= ATOL + RTOL * |TransformerLens| elementwise, on logits and every
hook the claims read. Measured on the subjects' fingerprint batches (real inputs at the real sequence
length): logits differ by at most 2.1e-5 (othello-tiny, culture-tiny) and 1.1e-5 (induction-tiny); hooks by
at most 6.9e-5 (culture-tiny's blocks.3.hook_resid_post, whose values reach 130), float32 rounding of
another summation order."""

import copy
import math

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tests.conftest import SUBJECTS_DIR
from verify import fused, registry
from verify.manifest import claim_name
from verify.subjects import SubjectSet, load_subject, read_manifest
from verify.verdicts import Check

ATOL, RTOL = 1e-4, 1e-5
EMBEDDED = ("othello-tiny", "culture-tiny", "induction-tiny")
# what the claims and SAEs read, per block; hooks a model does not fire (an attention-only model's MLP) are left out
BLOCK_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "mlp.hook_post")


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


# the suite's session-wide subjects: their games and puzzles are made once for every test that reads them
SHARED_DATA = {"othello-tiny": "othello_tiny", "culture-tiny": "culture_tiny"}


@pytest.fixture(scope="module", params=EMBEDDED)
def pair(request):
    """(subject with TransformerLens' forward, a fused copy of its model, its fingerprint batch)."""
    registry.load_entry_points()
    m = read_manifest(SUBJECTS_DIR / f"{request.param}.toml")
    plain = load_subject(m, "cpu", fused_forward=False)
    if request.param in SHARED_DATA:
        plain = request.getfixturevalue(SHARED_DATA[request.param]).with_weights(model=plain.model)
    fast = copy.deepcopy(plain.model)
    fused.install(fast)
    tokens, _ = registry.sources()[m.data.source].fingerprint_batch(plain)
    assert tokens.shape[1] == plain.model.cfg.n_ctx  # the real sequence length
    return plain, fast, tokens


@pytest.fixture
def sdpa_calls(monkeypatch):
    """How often the fused attention ran (it alone calls scaled_dot_product_attention)."""
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    return calls


def test_every_attention_and_layer_norm_is_fused(pair):
    subject, fast, _ = pair
    cfg = fast.cfg
    expected = {f"blocks.{i}.{m}" for i in range(cfg.n_layers) for m in ("attn", "ln1") + (() if cfg.attn_only else ("ln2",))}
    assert set(fused.fused_modules(fast)) == expected | {"ln_final"}
    assert fused.fused_modules(subject.model) == []  # loaded with fused_forward=False
    assert fused.install(fast) == fused.fused_modules(fast)  # a second install changes nothing


def test_logits_and_claim_hooks_agree(pair, sdpa_calls):
    subject, fast, tokens = pair
    names = [f"blocks.{i}.{h}" for i in range(fast.cfg.n_layers) for h in BLOCK_HOOKS]
    with torch.inference_mode():
        ref, ref_cache = subject.model.run_with_cache(tokens, names_filter=lambda n: n in names)
        assert not sdpa_calls
        out, cache = fast.run_with_cache(tokens, names_filter=lambda n: n in names)
    assert len(sdpa_calls) == fast.cfg.n_layers  # hooks outside attention leave every layer fused
    close(out, ref)
    assert set(cache.keys()) == set(ref_cache.keys()) and len(ref_cache.keys()) >= 3 * fast.cfg.n_layers
    for name in ref_cache.keys():
        close(cache[name], ref_cache[name])


@pytest.mark.parametrize("inner", ["attn.hook_z", "attn.hook_pattern"])
def test_a_hook_inside_attention_runs_transformer_lens_there(pair, sdpa_calls, inner):
    subject, fast, tokens = pair
    layer = fast.cfg.n_layers - 1
    name = f"blocks.{layer}.{inner}"
    with torch.inference_mode():
        _, ref = subject.model.run_with_cache(tokens, names_filter=name)
        _, got = fast.run_with_cache(tokens, names_filter=name)
    assert len(sdpa_calls) == fast.cfg.n_layers - 1  # the hooked layer fell back, the others did not
    close(got[name], ref[name])


def test_head_ablation_agrees(pair, sdpa_calls):
    subject, fast, tokens = pair
    name = f"blocks.{fast.cfg.n_layers - 1}.attn.hook_z"

    def ablate(z, hook):
        z[:, :, 0] = 0.0
        return z

    with torch.inference_mode():
        ref = subject.model.run_with_hooks(tokens, fwd_hooks=[(name, ablate)])
        got = fast.run_with_hooks(tokens, fwd_hooks=[(name, ablate)])
        clean = fast(tokens)
    assert (got - clean).abs().max() > 100 * ATOL  # the ablation took effect
    close(got, ref)


def test_start_and_stop_at_layer(pair, sdpa_calls):
    subject, fast, tokens = pair
    mid = fast.cfg.n_layers // 2
    with torch.inference_mode():
        ref_resid = subject.model(tokens, stop_at_layer=mid)
        resid = fast(tokens, stop_at_layer=mid)
        # a shortformer's blocks add the positions to q and k: given with the residual stream
        pos = fast.pos_embed(tokens) if fast.cfg.positional_embedding_type == "shortformer" else None
        ref_logits = subject.model(ref_resid, start_at_layer=mid, shortformer_pos_embed=pos)
        logits = fast(ref_resid, start_at_layer=mid, shortformer_pos_embed=pos)
    assert len(sdpa_calls) == fast.cfg.n_layers  # mid blocks, then the rest
    close(resid, ref_resid)
    close(logits, ref_logits)


def block_inputs(model, tokens):
    """The residual stream entering the last block, and the positions a shortformer block adds to q and k."""
    layer = model.cfg.n_layers - 1
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in (f"blocks.{layer}.hook_resid_pre", "hook_pos_embed"))
    pos = cache["hook_pos_embed"] if model.cfg.positional_embedding_type == "shortformer" else None
    return layer, cache[f"blocks.{layer}.hook_resid_pre"], pos


INNER = {"attn": ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z"), "ln1": ("hook_scale", "hook_normalized")}


@pytest.mark.parametrize("module,hook", [(m, h) for m, hooks in INNER.items() for h in hooks])
def test_inner_hook_gives_exactly_transformer_lens(pair, sdpa_calls, module, hook):
    """With a hook inside, the fused module's output is bit for bit TransformerLens' on the same input."""
    subject, fast, tokens = pair
    layer, resid, pos = block_inputs(subject.model, tokens)
    with torch.inference_mode():
        x = subject.model.blocks[layer].ln1(resid)
    q = x if pos is None else x + pos
    seen = []
    for model in (subject.model, fast):
        point = getattr(getattr(model.blocks[layer], module), hook)
        handle = point.register_forward_hook(lambda mod, args, out: seen.append(out.clone()))
        try:
            with torch.inference_mode():
                seen.append(model.blocks[layer].attn(q, q, x) if module == "attn" else model.blocks[layer].ln1(resid))
        finally:
            handle.remove()
    ref_hooked, ref_out, got_hooked, got_out = seen
    assert torch.equal(got_hooked, ref_hooked) and torch.equal(got_out, ref_out)
    assert not sdpa_calls


def test_unimplemented_arguments_fall_back_exactly(pair, sdpa_calls):
    subject, fast, tokens = pair
    layer, resid, _ = block_inputs(subject.model, tokens)
    mask = torch.ones(tokens.shape, dtype=torch.long)
    mask[0, :3] = 0  # padding: a feature the fused code does not implement
    with torch.inference_mode():
        x = subject.model.blocks[layer].ln1(resid)
        ref = subject.model.blocks[layer].attn(x, x, x, attention_mask=mask)
        got = fast.blocks[layer].attn(x, x, x, attention_mask=mask)
        subject.model.set_use_attn_result(True)  # a switch TransformerLens turns on after loading
        fast.set_use_attn_result(True)
        try:
            ref_result = subject.model.blocks[layer].attn(x, x, x)
            got_result = fast.blocks[layer].attn(x, x, x)
        finally:
            subject.model.set_use_attn_result(False)
            fast.set_use_attn_result(False)
    assert torch.equal(got, ref) and torch.equal(got_result, ref_result)
    assert not sdpa_calls


def test_non_finite_input_gets_transformer_lens_semantics(pair):
    """A NaN in the residual stream: TransformerLens zeroes NaN attention rows, and a non-finite fused result
    is recomputed by TransformerLens' code, so the output is TransformerLens' to the bit, NaNs included."""
    subject, fast, tokens = pair
    layer, resid, _ = block_inputs(subject.model, tokens)
    resid = resid.clone()
    resid[0, 2] = math.nan
    with torch.inference_mode():
        x = subject.model.blocks[layer].ln1(resid)
        ref = subject.model.blocks[layer].attn(x, x, x)
        got = fast.blocks[layer].attn(x, x, x)
        ref_ln, got_ln = subject.model.blocks[layer].ln1(resid), fast.blocks[layer].ln1(resid)
    assert ref[0].isnan().any() and ref[1:].isfinite().all()  # the case exists, in one sequence
    torch.testing.assert_close(got, ref, atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(got_ln, ref_ln, atol=0, rtol=0, equal_nan=True)


def tiny_config(**extra) -> HookedTransformerConfig:
    return HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=10, n_ctx=6,
                                   act_fn="gelu", device="cpu", seed=0, **extra)


@pytest.mark.parametrize("extra,fused_names", [
    ({"positional_embedding_type": "rotary", "rotary_dim": 8}, {"blocks.0.ln1", "blocks.0.ln2", "ln_final"}),
    ({"attention_dir": "bidirectional"}, {"blocks.0.ln1", "blocks.0.ln2", "ln_final"}),
    ({"n_key_value_heads": 1}, {"blocks.0.ln1", "blocks.0.ln2", "ln_final"}),
    ({"normalization_type": "RMS"}, {"blocks.0.attn"}),
    ({"normalization_type": "LNPre"}, {"blocks.0.attn", "blocks.0.ln1", "blocks.0.ln2", "ln_final"}),
    ({"scale_attn_by_inverse_layer_idx": True}, {"blocks.0.ln1", "blocks.0.ln2", "ln_final"}),
])
def test_eligibility_from_the_config(extra, fused_names):
    """Architectures the fused code does not implement keep TransformerLens' modules; the rest agree."""
    model = HookedTransformer(tiny_config(**extra)).eval()
    fast = copy.deepcopy(model)
    assert set(fused.install(fast)) == fused_names
    tokens = torch.randint(0, 10, (3, 6), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        close(fast(tokens), model(tokens))


def test_wanted_reads_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv(fused.ENV, raising=False)
    assert fused.wanted() is True
    monkeypatch.setenv(fused.ENV, "off")
    assert fused.wanted() is False and fused.wanted("on") is True
    monkeypatch.setenv(fused.ENV, "maybe")
    with pytest.raises(ValueError, match=r"^VERIFY_FUSED='maybe': expected one of on, 1, off, 0$"):
        fused.wanted()
    assert SubjectSet([], "cpu", fused.wanted("off")).fused_forward is False


def test_claims_print_the_same_numbers_fused_or_not(sdpa_calls):
    """induction-tiny's claims (hook_pattern and hook_z read inside attention, the SAE's hook outside it),
    measured in-process with and without the fused forward: every check's value, interval and verdict
    agree at the printed precision."""
    registry.load_entry_points()
    plain = load_subject(read_manifest(SUBJECTS_DIR / "induction-tiny.toml"), "cpu", fused_forward=False)
    fast_model = copy.deepcopy(plain.model)
    assert fused.install(fast_model)
    fast = plain.with_weights(model=fast_model)  # the same data, every result recomputed
    printed, fused_calls = {}, []
    for subject in (plain, fast):
        for key, params in subject.manifest.claims.items():
            checks = registry.get_claim(claim_name(key)).check(subject, params)
            printed.setdefault(key, []).append([str(c) for c in checks if isinstance(c, Check)])
        fused_calls.append(len(sdpa_calls))
    assert fused_calls[0] == 0 and fused_calls[1] > 0  # the fused attention ran where nothing hooked inside it
    assert len(printed) >= 5
    for key, (off, on) in printed.items():
        assert off and on == off, key


def test_the_pytest_option_reaches_the_subjects(pytester, monkeypatch):
    """--claims-fused decides over $VERIFY_FUSED; a bad $VERIFY_FUSED is a usage error naming it (in a
    session with subjects: one without reads neither, and imports no torch)."""
    from verify.plugin import subjects

    pytester.mkdir("subjects")
    one = ("--subjects-dir", "subjects", "--subject-file", str(SUBJECTS_DIR / "induction-tiny.toml"))
    monkeypatch.setenv(fused.ENV, "on")
    assert subjects(pytester.parseconfigure(*one, "--claims-fused=off")).fused_forward is False
    assert subjects(pytester.parseconfigure(*one)).fused_forward is True
    monkeypatch.setenv(fused.ENV, "fast")
    with pytest.raises(pytest.UsageError, match=r"^VERIFY_FUSED='fast': expected one of on, 1, off, 0$"):
        subjects(pytester.parseconfigure(*one))
    assert subjects(pytester.parseconfigure("--subjects-dir", "subjects")).fused_forward is None
