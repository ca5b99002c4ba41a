"""Each culture claim holds on culture-tiny and fails where its finding is false."""

import dataclasses

import numpy as np
import pytest
import torch

from verify import registry
from verify.culture import findings as f
from verify.culture.data import TASKS
from verify.verdicts import failures

from tests.conftest import deepcopy_model, failed_checks, mutated, own_failed_checks, random_model
from verify.interventions import shuffled_decoder

CLAIMS = [name for name, c in registry.claims().items() if c.domain == "culture"]


def verdict(subject, claim: str) -> list[str]:
    return failed_checks(subject, claim)


def silenced(subject, hook: str):
    """A copy of the model whose `hook` output is always zero: ablating it can change nothing."""
    model = deepcopy_model(subject)
    _, layer, point = hook.split(".")
    block = model.blocks[int(layer)]
    weights = {"hook_mlp_out": (block.mlp.W_out, block.mlp.b_out), "hook_attn_out": (block.attn.W_O, block.attn.b_O)}[point]
    with torch.no_grad():
        for w in weights:
            w.zero_()
    return model


def test_the_embedded_subject_declares_every_culture_claim(culture_tiny):
    assert sorted(culture_tiny.manifest.claims) == sorted(CLAIMS)


def test_claims_hold_on_the_embedded_subject(culture_tiny):
    for claim in CLAIMS:
        assert verdict(culture_tiny, claim) == [], claim


def test_solved_rate_fails_on_a_random_model(culture_tiny):
    failed = verdict(mutated(culture_tiny, model=random_model(culture_tiny)), "solved_rate")
    assert len(failed) == len(culture_tiny.manifest.claims["solved_rate"].tasks), failed  # every claimed task


def test_ablation_claim_fails_on_a_random_model(culture_tiny):
    assert verdict(mutated(culture_tiny, model=random_model(culture_tiny)), "ablation_breaks_one_task")


def test_ablation_claim_fails_when_the_hook_carries_nothing(culture_tiny):
    hook = culture_tiny.manifest.claims["ablation_breaks_one_task"].hook
    bad = mutated(culture_tiny, model=silenced(culture_tiny, hook))
    assert verdict(bad, "ablation_breaks_one_task")  # the silenced model also solves less: its precondition fails
    own = own_failed_checks(bad, "ablation_breaks_one_task")
    assert any("FAIL broken by zeroing" in c for c in own), own


def test_ablation_margin_fails_when_another_task_is_broken_within_the_targets_interval(culture_tiny):
    """Broken rates 0.32 and 0.29 on 400 puzzles each: the other task lies inside the target's
    interval, the margin's interval reaches below zero, and the margin check fails on its own."""
    flags = {task: np.zeros(400, dtype=bool) for task in TASKS}
    flags["translate"][:128], flags["grow"][:116] = True, True
    margin, runner_up = f.margin_over_others(flags, "translate")
    target = f.rate(flags["translate"])
    assert runner_up == "grow" and target.lo < 0.29 < target.hi and margin.lo < 0 < margin.value
    params = dataclasses.replace(culture_tiny.manifest.claims["ablation_breaks_one_task"], task="translate",
                                 min_broken=0.1, max_broken_other=0.5)
    failed = [str(c) for c in failures(f.judge_ablation(f.Ablation({t: f.rate(x) for t, x in flags.items()}, margin, runner_up), params))]
    assert len(failed) == 1 and failed[0].startswith("FAIL margin: broken translate - broken grow"), failed
    assert margin.value < params.min_margin  # the declared minimum is wider than the target's interval here


def test_ablation_claim_fails_when_it_names_a_task_the_hook_breaks_less(culture_tiny):
    """Declared with grow, the second most broken task under culture-tiny's hook (bounds that grow's
    rate clears): only the margin says that the hook does not break grow alone."""
    params = dataclasses.replace(culture_tiny.manifest.claims["ablation_breaks_one_task"], task="grow",
                                 min_broken=0.05, max_broken_other=1.0)
    failed = [str(c) for c in failures(registry.get_claim("ablation_breaks_one_task").check(culture_tiny, params))]
    assert len(failed) == 1 and failed[0].startswith("FAIL margin: broken grow - broken translate"), failed


def test_ablation_claim_refuses_a_margin_that_cannot_fail():
    with pytest.raises(ValueError, match="min_margin must be > 0"):
        f.AblationBreaksOneTask(hook="blocks.3.hook_mlp_out", task="translate", min_broken=0.1, max_broken_other=0.3, min_margin=0.0)


def test_splice_claim_fails_with_a_shuffled_dictionary(culture_tiny):
    name = culture_tiny.manifest.claims["sae_splice_restores"].sae
    bad = mutated(culture_tiny, saes={name: shuffled_decoder(culture_tiny.saes[name], seed=7)})
    failed = verdict(bad, "sae_splice_restores")  # a dictionary that does not reconstruct: the precondition says so
    assert any(f"FAIL precondition: SAE {name} explained variance" in c for c in failed), failed
    own = own_failed_checks(bad, "sae_splice_restores")  # and the claim's own checks fail too
    assert any("FAIL restored by" in c for c in own) and any("FAIL splice - clean" in c for c in own), own


def test_splice_claim_with_too_few_broken_puzzles_is_not_measurable(culture_tiny):
    claim = registry.get_claim("sae_splice_restores")
    params = dataclasses.replace(culture_tiny.manifest.claims["sae_splice_restores"], min_cases=10_000)
    with pytest.raises(ValueError, match=r"breaks \d+ translate puzzles \(min_cases 10000\): too few"):
        claim.check(culture_tiny, params)


def test_a_culture_claim_naming_an_sae_without_a_task_is_not_measurable_in_one_line():
    """The framework's fidelity precondition reads the claim's task; a claim without one is told so
    (a ValueError: not measurable), not an AttributeError traceback."""
    from dataclasses import dataclass

    from verify.culture.findings import claim_sae_fidelity

    @dataclass(frozen=True)
    class NoTask:
        sae: str

    with pytest.raises(ValueError, match="names SAE 'mlp3' but has no `task` parameter"):
        claim_sae_fidelity(None, "mlp3", NoTask("mlp3"))
