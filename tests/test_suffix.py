"""verify.suffix: logits at the last positions, the last block computed only there, equal the whole
forward's; wherever a hook could tell the difference the whole forward runs instead.

Measured on culture-tiny's confirmation puzzles: the suffix logits equal the whole forward's bit for bit
(the same kernels on fewer rows); the test allows float rounding (ATOL) in case a BLAS blocks rows
differently, and requires the verdicts to be equal."""

import dataclasses

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from verify import fused, suffix
from verify.culture import findings as culture_findings
from verify.culture.evaluate import teacher_forced_verdicts
from verify.fidelity import summed_cross_entropy
from verify.interventions import run_with_hooks, sae_splice, zero_ablation
from verify.subjects import load_subject

ATOL = 1e-5
PUZZLES = 48  # two batches of teacher_forced_verdicts' 32, the second one short


@pytest.fixture(scope="module")
def culture(culture_tiny):
    tokens = culture_findings.puzzles(culture_tiny, "translate")[:PUZZLES]
    layout = culture_findings.layout(culture_tiny)
    return culture_tiny, tokens, layout, layout.answer_logits_slice.start


def whole(model, inputs, first, hooks=(), start_at_layer=None):
    return run_with_hooks(model, inputs, list(hooks), start_at_layer)[:, first:]


def sae_hooks(subject):
    hook = subject.manifest.saes["mlp3"].hook
    return {"clean": [], "zeroed": [zero_ablation(hook)], "spliced": [sae_splice(hook, subject.saes["mlp3"])]}


@pytest.mark.parametrize("hooks", ["clean", "zeroed", "spliced"])
def test_suffix_logits_equal_the_whole_forward(culture, hooks):
    subject, tokens, _, first = culture
    model, chosen = subject.model, sae_hooks(subject)[hooks]
    assert suffix.refusal(model, chosen) is None  # the suffix forward is what runs
    inputs = tokens[:, :-1]
    got = suffix.suffix_logits(model, inputs, first, chosen)
    assert got.shape == (len(tokens), inputs.shape[1] - first, model.cfg.d_vocab)
    torch.testing.assert_close(got, whole(model, inputs, first, chosen), atol=ATOL, rtol=0)
    for layer in (1, model.cfg.n_layers - 1):  # from a residual stream: some blocks first, or the last alone
        stream = model(inputs, stop_at_layer=layer)
        torch.testing.assert_close(suffix.suffix_logits(model, stream, first, chosen, layer),
                                   whole(model, stream, first, chosen, layer), atol=ATOL, rtol=0)


def test_verdicts_and_losses_equal_the_whole_forward(culture):
    """What the culture claims read: solved flags with each intervention, and the fidelity's summed losses."""
    subject, tokens, layout, first = culture
    plain = load_subject(subject.manifest, "cpu", fused_forward=False).model  # TransformerLens' whole forward only
    assert suffix.refusal(plain) == "the last block's attention is not fused"
    targets = tokens[:, layout.answer_slice]
    for name, hooks in sae_hooks(subject).items():
        assert torch.equal(teacher_forced_verdicts(subject.model, tokens, layout, hooks),
                           teacher_forced_verdicts(plain, tokens, layout, hooks)), name
        fast = summed_cross_entropy(subject.model, tokens[:, :-1], targets, layout.answer_logits_slice, hooks)
        slow = summed_cross_entropy(plain, tokens[:, :-1], targets, layout.answer_logits_slice, hooks)
        assert fast == pytest.approx(slow, rel=1e-5, abs=1e-4), name


def test_a_hook_that_reads_positions_gets_the_whole_forward(culture):
    """A hook in the last block not marked positionwise (here: it zeroes one position) could see that the
    suffix holds fewer positions; the whole forward runs, so its result is exactly TransformerLens'."""
    subject, tokens, _, first = culture
    model, last = subject.model, subject.model.cfg.n_layers - 1

    def zero_one_position(act, hook):
        act[:, first + 3] = 0
        return act

    hooks = [(f"blocks.{last}.hook_mlp_out", zero_one_position)]
    assert suffix.refusal(model, hooks) == f"a hook on blocks.{last}.hook_mlp_out not marked positionwise"
    inputs = tokens[:, :-1]
    assert torch.equal(suffix.suffix_logits(model, inputs, first, hooks), whole(model, inputs, first, hooks))
    # entering the last block, every position is there: any hook may run with the suffix forward
    entering = [(f"blocks.{last}.hook_resid_pre", zero_one_position)]
    assert suffix.refusal(model, entering) is None
    torch.testing.assert_close(suffix.suffix_logits(model, inputs, first, entering),
                               whole(model, inputs, first, entering), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name, why", [
    ("blocks.{last}.attn.hook_pattern", "a hook on blocks.{last}.attn.hook_pattern"),
    ("blocks.{last}.ln1.hook_normalized", "a hook on blocks.{last}.ln1.hook_normalized"),
    ("ln_final.hook_normalized", "a hook on ln_final.hook_normalized not marked positionwise"),
])
def test_refusals_name_the_hook(culture, name, why):
    model = culture[0].model
    last = model.cfg.n_layers - 1
    assert suffix.refusal(model, [(name.format(last=last), lambda act, hook: act)]) == why.format(last=last)
    assert suffix.refusal(model, [(lambda n: True, lambda act, hook: act)]) == "a hook chosen by a name filter"
    assert suffix.refusal(model, [("blocks.0.hook_mlp_out", lambda act, hook: act)]) is None  # before the last block


def test_a_hook_registered_outside_the_call_gets_the_whole_forward(culture):
    subject, tokens, _, first = culture
    model = subject.model
    handle = model.blocks[-1].hook_mlp_out.register_forward_hook(lambda module, args, out: out * 0)
    try:
        assert suffix.refusal(model) == "a hook is registered on the last block outside this call"
        inputs = tokens[:8, :-1]
        assert torch.equal(suffix.suffix_logits(model, inputs, first), whole(model, inputs, first))
    finally:
        handle.remove()


@pytest.mark.parametrize("extra", [{}, {"attn_only": True}, {"normalization_type": None}, {"use_hook_mlp_in": True}])
def test_block_variants(extra):
    """Attention-only blocks (no resid_mid hook, no MLP), no LayerNorm at all, a hooked MLP input."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=24, d_head=8, n_heads=4, d_mlp=64, d_vocab=11,
                                  act_fn="gelu", normalization_type="LN", seed=3, device="cpu")
    model = HookedTransformer(dataclasses.replace(cfg, **extra)).eval()
    assert fused.install(model)
    tokens = torch.randint(0, 11, (5, 24), generator=torch.Generator().manual_seed(0))
    hooks = [zero_ablation("blocks.1.hook_attn_out")] if extra.get("attn_only") else [zero_ablation("blocks.1.hook_mlp_out")]
    for chosen in ([], hooks):
        assert suffix.refusal(model, chosen) is None
        torch.testing.assert_close(suffix.suffix_logits(model, tokens, 17, chosen), whole(model, tokens, 17, chosen),
                                   atol=ATOL, rtol=0)


def test_bad_first_position(culture):
    subject, tokens, _, _ = culture
    inputs = tokens[:2, :-1]
    n = inputs.shape[1]
    with pytest.raises(ValueError, match=rf"first position {n} outside 0\.\.{n - 1}"):
        suffix.suffix_logits(subject.model, inputs, n)


def test_a_non_finite_last_attention_runs_transformer_lens_last_block_and_fires_each_hook_once():
    """A NaN query weight in the last block: the fused attention is not finite, TransformerLens' code turns
    the NaN pattern rows into zeros. The suffix forward then runs TransformerLens' last block from the
    stream it has, so a hook before the last block (here one that records) fires once per forward."""
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=24, d_head=8, n_heads=4, d_mlp=64, d_vocab=11,
                                  act_fn="gelu", normalization_type="LN", seed=3, device="cpu")
    model = HookedTransformer(cfg).eval()
    assert fused.install(model)
    with torch.no_grad():
        model.blocks[1].attn.W_Q[0, 0, 0] = float("nan")
    tokens = torch.randint(0, 11, (5, 24), generator=torch.Generator().manual_seed(0))
    last = model.blocks[1]
    assert fused.attention_from(last.attn, last.ln1(model(tokens, stop_at_layer=1)), 17) is None  # the fallback runs
    seen = {}

    def record(act, hook):
        seen[hook.name] = seen.get(hook.name, 0) + 1
        return act

    hooks = [("blocks.0.hook_mlp_out", record), ("blocks.1.hook_resid_pre", record), zero_ablation("blocks.1.hook_mlp_out")]
    got = suffix.suffix_logits(model, tokens, 17, hooks)
    assert seen == {"blocks.0.hook_mlp_out": 1, "blocks.1.hook_resid_pre": 1}
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, whole(model, tokens, 17, hooks), atol=ATOL, rtol=0)
    stream = model(tokens, stop_at_layer=1)  # starting at the last block
    torch.testing.assert_close(suffix.suffix_logits(model, stream, 17, hooks, 1), whole(model, stream, 17, hooks, 1),
                               atol=ATOL, rtol=0)
