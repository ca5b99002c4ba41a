"""Generic claims about any TransformerLens model on token sequences, declared in TOML alone.

- `attention_pattern`: head L.H's mean attention, over the declared query positions where the
  pattern is defined, to a key chosen by the pattern: the previous token (t - 1), the induction
  target (the position after the latest earlier occurrence of the query's token), the duplicate
  token (that earlier occurrence itself), the first token (position 0). Compared with the same head
  of a randomly initialised model of the same config (seeded), and ranked among its layer's heads.
- `ablation_effect`: zero-, mean- (the selection split's mean activation at each position) or
  resample- (the activation of a selection sequence, seeded permutation) ablating a hook, or one
  head of it, raises the mean loss (or lowers top-1 accuracy) of the token predictions at the
  target positions by at least min_effect and moves them at the control positions by at most
  max_control_effect either way. The same ablation on a randomly initialised model is printed.
- `sae_quality`: an SAE's explained variance and loss recovered when spliced (verify.fidelity's
  definitions, version 2), L0 and the share of features that never fire, on the confirmation split,
  every position (BOS included); a randomly initialised SAE of the same config is printed as the
  baseline. Through SAELens' own evaluation code where it gives what our intervals resample: loss
  recovered is its get_recons_loss's ce_loss_score, from per-sequence sums of its per-token losses;
  explained variance, L0 and the dead share (SAELens' get_sparsity_and_variance_metrics gives
  whole-split numbers only, from a forward of its own) are ours, and agree with SAELens' to 1e-6 on
  induction-tiny (tests/test_tokens_neuron_and_evals.py). SAELens' definitions are ours except that its run_evals by default excludes the
  tokenizer's special tokens (BOS, EOS, PAD) from every metric and does not splice there; we pass
  none (our models carry no tokenizer, so its default would exclude nothing either). On
  induction-tiny's TopK SAE, leaving BOS out gives explained variance 0.9741 against 0.9743 at every
  position; loss recovered (0.9947) and L0 (8) move by less than 1e-5.
- `feature_tracks_label`: Pearson r between an SAE feature's (`sae`, `feature`) or a neuron's
  (`hook`, `neuron`: one unit of a vector hook) activation and a position label (a position set, or
  "the token is one of label_tokens"), AUROC, and the margin over the best feature of a random SAE
  of the same config (for a neuron: the best unit of the same hook of a randomly initialised model
  of the same config), chosen the same way on the selection split.
Every statistic is on the confirmation split; 95% intervals resample whole sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch

from verify import fidelity, stats, timing
from verify.activations import hook_activations, sae_feature_acts
from verify.interventions import random_like, random_model_like
from verify.params import (Correlation, Count, FeatureOf, Fraction, Head, HeadOrWhole, Hook, HookPoint, Layer, Range, SAEName,
                           SAERef, UnitOf)
from verify.registry import Claim, DataSource, Domain, register_claim, register_domain, register_source
from verify.tokens import data as token_data
from verify.tokens.data import TokenData, input_tokens, previous_occurrence, split
from verify.verdicts import Check, Note, point

PATTERN_KEYS = {"previous_token": "previous token", "induction": "induction target (after the query token's last occurrence)",
                "duplicate_token": "query token's last earlier occurrence", "first_token": "first token"}
PATTERNS = tuple(PATTERN_KEYS)
ABLATIONS = ("zero", "mean", "resample")
METRICS = ("loss", "accuracy")
# hooks with a head axis, and where it is: (batch, pos, head, d) or (batch, head, query, key)
HEAD_AXIS = {"attn.hook_z": 2, "attn.hook_q": 2, "attn.hook_k": 2, "attn.hook_v": 2, "attn.hook_result": 2,
             "attn.hook_pattern": 1, "attn.hook_attn_scores": 1}

register_source(DataSource("tokens-synthetic", "tokens", options=token_data.RepeatedTokens,
                           fingerprint_batch=token_data.fingerprint_batch))
register_source(DataSource("tokens-dataset", "tokens", options=token_data.DatasetColumns, open=token_data.open_manifest_dataset, needs_path=True,
                           files=token_data.dataset_files, fingerprint_batch=token_data.fingerprint_batch))


def head_axis(hook: str) -> int | None:
    return next((axis for suffix, axis in HEAD_AXIS.items() if hook.endswith(suffix)), None)


def check_position_set(name: str, field: str) -> None:
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"{field}: {name!r} is not a position set (built in: {', '.join(token_data.BUILT_IN_SETS)}; "
                         "or a boolean column of a tokens-dataset)")


# --- parameters -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttentionPattern:
    layer: Layer
    head: Head
    pattern: str  # previous_token | induction | duplicate_token | first_token
    min_score: Fraction
    max_score: Fraction = 1.0
    min_margin_over_random: float = 0.0  # over the same head of a randomly initialised model
    max_rank: Annotated[int, Range(1, None)] = 1  # the head's rank among its layer's heads by this score (1: highest)
    positions: str = "all"  # the query positions counted (those where the pattern is defined)
    random_seed: int = 0
    min_cases: Count = 100  # query positions counted; fewer: not measurable

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern: {self.pattern!r} is not one of {', '.join(PATTERNS)}")
        check_position_set(self.positions, "positions")


@dataclass(frozen=True)
class AblationEffect:
    hook: Hook
    min_effect: float  # target positions: loss rise (nats) or accuracy drop, at least this
    max_control_effect: Annotated[float, Range(0.0, None)]  # control positions: |change| at most this
    max_effect: float = math.inf
    head: HeadOrWhole = -1  # one head of a hook with a head axis (attn.hook_z, ...); -1: the whole hook
    ablation: str = "zero"  # zero | mean | resample
    metric: str = "loss"  # loss (mean nats per token) | accuracy (top-1)
    target_positions: str = "repeat"
    control_positions: str = "first"
    random_seed: int = 0  # the resample permutation and the random model
    min_cases: Count = 100  # token predictions at the target and at the control positions

    def __post_init__(self) -> None:
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation: {self.ablation!r} is not one of {', '.join(ABLATIONS)}")
        if self.metric not in METRICS:
            raise ValueError(f"metric: {self.metric!r} is not one of {', '.join(METRICS)}")
        if self.head != -1 and head_axis(self.hook) is None:
            raise ValueError(f"head: {self.hook!r} has no head axis; one head is ablated at a hook ending in "
                             f"{', '.join(HEAD_AXIS)}")
        check_position_set(self.target_positions, "target_positions")
        check_position_set(self.control_positions, "control_positions")


@dataclass(frozen=True)
class SAEQuality:
    """Measured at every position, BOS included: SAELens' run_evals by default leaves the tokenizer's
    special tokens out of every metric (the module docstring has what that changes)."""

    sae: SAEName
    min_explained_variance: float
    min_loss_recovered: float
    max_l0: Annotated[float, Range(0.0, None)]
    max_dead_fraction: Fraction
    max_explained_variance: float = 1.0
    max_loss_recovered: float = math.inf
    min_l0: Annotated[float, Range(0.0, None)] = 0.0
    random_seed: int = 0  # the randomly initialised SAE printed as the baseline


@dataclass(frozen=True, kw_only=True)  # keywords only: the optional unit fields come before the required bound
class FeatureTracksLabel:
    """The unit is an SAE feature (`sae`, `feature`) or a neuron (`hook`, `neuron`: one unit of a
    vector hook), exactly one of the two."""

    sae: Annotated[str | None, SAERef()] = None
    feature: Annotated[int | None, FeatureOf("sae")] = None
    min_correlation: Correlation
    max_correlation: Correlation = 1.0
    label: str = "seen_before"  # a position set; ignored when label_tokens is given
    label_tokens: tuple[int, ...] = ()  # label: the position's token is one of these
    positions: str = "all"  # the positions counted
    min_auroc: Fraction = 0.5
    min_margin_over_random: float = 0.0  # over the baseline's best unit (random SAE / random model) chosen on the selection split
    random_seed: int = 0  # the random SAE, or for a neuron the random model
    min_cases: Count = 100  # labelled and unlabelled positions each
    hook: Annotated[str | None, HookPoint(vector=True)] = None
    neuron: Annotated[int | None, UnitOf("hook")] = None

    def __post_init__(self) -> None:
        sae_form, neuron_form = (self.sae, self.feature), (self.hook, self.neuron)
        if any(v is not None for v in sae_form) and any(v is not None for v in neuron_form):
            raise ValueError("sae, feature and hook, neuron: name one unit, an SAE feature (sae and feature) or a neuron "
                             "(hook and neuron), not both")
        if all(v is None for v in (*sae_form, *neuron_form)):
            raise ValueError("no unit: name an SAE feature (sae and feature) or a neuron (hook and neuron)")
        for (a, b), (x, y) in ((("sae", "feature"), sae_form), (("hook", "neuron"), neuron_form)):
            if (x is None) != (y is None):
                raise ValueError(f"{b if y is None else a}: missing; {a} and {b} name the unit together")
        check_position_set(self.label, "label")
        check_position_set(self.positions, "positions")

    def unit(self) -> str:
        return f"SAE {self.sae} feature {self.feature}" if self.sae is not None else f"neuron {self.neuron} of {self.hook}"


# --- shared measurements ------------------------------------------------------------------------------

def random_model(subject, seed: int):
    return subject.cached(("random model", seed), lambda: random_model_like(subject.model, seed))


def split_acts(subject, model, model_key: str, which: str, hook: str) -> torch.Tensor:
    return subject.cached(("tokens acts", model_key, which, hook),
                          lambda: hook_activations(model, input_tokens(subject, split(subject, which)), hook))


@timing.stage("forward")
@torch.inference_mode()
def token_losses(model, tokens: torch.Tensor, hooks_for=lambda i, n: [], batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(loss, correct), (sequences, positions) each: -log p and top-1 hit of the token at t from the
    logits at t - 1 (position 0: nan and False). `hooks_for(start, stop)`: the hooks for that batch."""
    losses, hits = [], []
    for i in timing.steps(range(0, len(tokens), batch_size)):
        batch = tokens[i : i + batch_size]
        logits = model.run_with_hooks(batch, fwd_hooks=hooks_for(i, i + len(batch)))[:, :-1].float()
        logp = torch.log_softmax(logits, -1)
        target = batch[:, 1:, None]
        losses.append(-logp.gather(-1, target)[..., 0].double().cpu())
        hits.append((logits.argmax(-1) == batch[:, 1:]).cpu())
    loss = torch.cat(losses).numpy()
    hit = torch.cat(hits).numpy()
    pad = lambda x, v: np.concatenate([np.full((len(x), 1), v, dtype=x.dtype), x], 1)  # noqa: E731
    return pad(loss, np.nan), pad(hit, False)


def masked_sums(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(sequences,) sums of values where mask, nan-safe."""
    return np.where(mask, np.nan_to_num(values), 0.0).sum(1)


def masked_correlation_sums(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-sequence (n, sx, sy, sxx, syy, sxy) over the masked positions (stats.pearson's input)."""
    x = np.where(mask, x, 0.0)
    y = np.where(mask, y, 0.0)
    return np.stack([mask.sum(1), x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)], -1).astype(np.float64)


# --- attention_pattern ----------------------------------------------------------------------------------

def pattern_keys(tokens: np.ndarray, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(key, defined), (sequences, positions) each: the key position the pattern attends to from each
    query, and whether the pattern is defined there."""
    n, length = tokens.shape
    t = np.broadcast_to(np.arange(length), (n, length))
    if pattern in ("previous_token", "first_token"):
        return (np.maximum(t - 1, 0) if pattern == "previous_token" else np.zeros_like(t)), t >= 1
    prev = previous_occurrence(tokens)
    defined = prev >= 0
    key = np.where(defined, prev + (pattern == "induction"), 0)
    return key, defined


@dataclass(frozen=True)
class HeadScores:
    score: stats.Estimate
    random_score: stats.Estimate
    margin: stats.Estimate
    rank: int
    layer_scores: tuple[float, ...]  # every head of the layer, head order
    queries: int


def head_score_sums(model, subject, which: str, layer: int, pattern: str, positions: str) -> tuple[np.ndarray, np.ndarray]:
    """(sequences, heads) summed attention to the pattern's key over the counted queries, and the
    (sequences,) number of counted queries."""
    data = split(subject, which)
    key, defined = pattern_keys(data.tokens, pattern)
    counted = defined & data.positions(positions)
    attn = hook_activations(model, input_tokens(subject, data), f"blocks.{layer}.attn.hook_pattern")  # (n, heads, q, k)
    to_key = attn.gather(-1, torch.from_numpy(key).to(attn.device)[:, None, :, None].expand(-1, attn.shape[1], -1, 1))[..., 0]
    sums = (to_key.double().cpu().numpy() * counted[:, None, :]).sum(-1)
    return sums, counted.sum(1).astype(np.float64)


def measure_attention(subject, p: AttentionPattern, which: str = "confirmation") -> HeadScores:
    ours, count = head_score_sums(subject.model, subject, which, p.layer, p.pattern, p.positions)
    if count.sum() < p.min_cases:
        raise ValueError(f"only {int(count.sum())} query positions where {p.pattern} is defined in {p.positions!r} "
                         f"(min_cases {p.min_cases})")
    base, _ = head_score_sums(random_model(subject, p.random_seed), subject, which, p.layer, p.pattern, p.positions)
    joint = np.stack([ours[:, p.head], base[:, p.head], count], -1)
    layer_scores = ours.sum(0) / count.sum()
    return HeadScores(
        score=stats.cluster_bootstrap(joint[:, [0, 2]], stats.ratio),
        random_score=stats.cluster_bootstrap(joint[:, [1, 2]], stats.ratio),
        margin=stats.cluster_bootstrap(joint, lambda t: (t[..., 0] - t[..., 1]) / t[..., 2]),
        rank=int(1 + (layer_scores > layer_scores[p.head]).sum()),
        layer_scores=tuple(float(s) for s in layer_scores),
        queries=int(count.sum()),
    )


def judge_attention(m: HeadScores, p: AttentionPattern) -> list:
    what = f"head {p.layer}.{p.head} mean attention to the {PATTERN_KEYS[p.pattern]} ({m.queries} queries, {p.positions})"
    others = ", ".join(f"{p.layer}.{h} {s:.3f}" for h, s in enumerate(m.layer_scores))
    return [
        Check(what, m.score, p.min_score, p.max_score),
        Check("margin over the same head of a randomly initialised model", m.margin, p.min_margin_over_random),
        Check(f"rank among layer {p.layer}'s heads ({others})", point(m.rank), 1, p.max_rank),
        Note(f"baseline: head {p.layer}.{p.head} of a randomly initialised model (seed {p.random_seed})", m.random_score),
    ]


# --- ablation_effect ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Effect:
    target: stats.Estimate
    control: stats.Estimate
    clean_target: stats.Estimate
    clean_control: stats.Estimate
    random_target: stats.Estimate  # the same ablation on a randomly initialised model
    cases: tuple[int, int]


def ablation_hook(p: AblationEffect, replacement):
    """The (hook, fn) pair: the hook's activation, or its one head, replaced by `replacement(act)`."""
    axis = head_axis(p.hook)

    def fn(act, hook):
        new = replacement(act)
        if p.head == -1:
            return new
        act = act.clone()
        index = [slice(None)] * act.ndim
        index[axis] = p.head
        act[tuple(index)] = new[tuple(index)]
        return act

    return p.hook, fn


def ablated_losses(subject, model, model_key: str, p: AblationEffect, which: str) -> tuple[np.ndarray, np.ndarray]:
    tokens = input_tokens(subject, split(subject, which))
    if p.ablation == "zero":
        hooks = lambda i, j: [ablation_hook(p, torch.zeros_like)]  # noqa: E731
    elif p.ablation == "mean":
        mean = split_acts(subject, model, model_key, "selection", p.hook).mean(0, keepdim=True)
        hooks = lambda i, j: [ablation_hook(p, lambda act: mean.expand_as(act).to(act.dtype))]  # noqa: E731
    else:
        source = split_acts(subject, model, model_key, "selection", p.hook)
        order = torch.randperm(len(source), generator=torch.Generator().manual_seed(p.random_seed)).to(source.device)
        hooks = lambda i, j: [ablation_hook(p, lambda act: source[order[i:j]].to(act.dtype))]  # noqa: E731
    return token_losses(model, tokens, hooks)


def effect_sums(subject, model, model_key: str, p: AblationEffect, which: str) -> np.ndarray:
    """Per sequence: ablated and clean sums of the metric and counts, at the target then control positions."""
    data = split(subject, which)
    clean = subject.cached(("token losses", model_key, which), lambda: token_losses(model, input_tokens(subject, data)))
    ablated = ablated_losses(subject, model, model_key, p, which)
    pick = 0 if p.metric == "loss" else 1
    columns = []
    for positions in (p.target_positions, p.control_positions):
        mask = data.positions(positions)
        mask[:, 0] = False  # no prediction of the first token
        columns += [masked_sums(ablated[pick].astype(np.float64), mask), masked_sums(clean[pick].astype(np.float64), mask),
                    mask.sum(1).astype(np.float64)]
    return np.stack(columns, -1)


def measure_ablation(subject, p: AblationEffect, which: str = "confirmation") -> Effect:
    sums = effect_sums(subject, subject.model, "model", p, which)
    cases = (int(sums[:, 2].sum()), int(sums[:, 5].sum()))
    if min(cases) < p.min_cases:
        raise ValueError(f"only {cases[0]} target and {cases[1]} control token predictions (min_cases {p.min_cases})")
    sign = 1.0 if p.metric == "loss" else -1.0  # an effect is a loss rise or an accuracy drop
    change = lambda a, c, n: lambda t: sign * (t[..., a] - t[..., c]) / t[..., n]  # noqa: E731
    rand = effect_sums(subject, random_model(subject, p.random_seed), f"random model {p.random_seed}", p, which)
    return Effect(
        target=stats.cluster_bootstrap(sums, change(0, 1, 2)),
        control=stats.cluster_bootstrap(sums, change(3, 4, 5)),
        clean_target=stats.cluster_bootstrap(sums[:, [1, 2]], stats.ratio),
        clean_control=stats.cluster_bootstrap(sums[:, [4, 5]], stats.ratio),
        random_target=stats.cluster_bootstrap(rand, change(0, 1, 2)),
        cases=cases,
    )


def judge_ablation(m: Effect, p: AblationEffect) -> list:
    what = f"{p.hook}" + (f" head {p.head}" if p.head != -1 else "")
    unit = "loss rise (nats/token)" if p.metric == "loss" else "top-1 accuracy drop"
    return [
        Check(f"{p.ablation}-ablating {what}: {unit} at {p.target_positions} ({m.cases[0]} predictions)", m.target,
              p.min_effect, p.max_effect),
        Check(f"{p.ablation}-ablating {what}: {unit} at {p.control_positions} ({m.cases[1]} predictions)", m.control,
              -p.max_control_effect, p.max_control_effect),
        Note(f"clean {p.metric} at {p.target_positions}", m.clean_target),
        Note(f"clean {p.metric} at {p.control_positions}", m.clean_control),
        Note(f"baseline: the same ablation on a randomly initialised model, {unit} at {p.target_positions}", m.random_target),
    ]


# --- SAE fidelity (the domain's precondition) and sae_quality -------------------------------------------------

@timing.stage("forward")
def sae_lens_recons_losses(model, sae, hook: str, tokens: torch.Tensor, batch_size: int = 64) -> dict[str, np.ndarray]:
    """(sequences,) summed next-token cross-entropy, every position, clean ("ce_loss_without_sae"),
    with the hook zero-ablated ("ce_loss_with_ablation") and the SAE spliced in ("ce_loss_with_sae"),
    by SAELens' own sae_lens.evals.get_recons_loss: its ce_loss_score is our loss recovered. Nothing
    is excluded (ignore_tokens None): SAELens' run_evals by default drops the tokenizer's special
    tokens (BOS, EOS, PAD) from its means and leaves them unspliced; our claims count every position."""
    from sae_lens.evals import get_recons_loss
    from sae_lens.training.activation_scaler import ActivationScaler

    keys = ("ce_loss_without_sae", "ce_loss_with_ablation", "ce_loss_with_sae")
    sums = {k: [] for k in keys}
    for i in range(0, len(tokens), batch_size):
        out = get_recons_loss(sae, model, ActivationScaler(), tokens[i : i + batch_size], compute_kl=False, compute_ce_loss=True,
                              ignore_tokens=None, hook_name=hook)
        for k in keys:
            sums[k].append(out[k].double().sum(1).cpu())
    return {k: torch.cat(v).numpy() for k, v in sums.items()}


def fidelity_of(subject, sae_name: str, which: str = "confirmation"):
    """(explained variance, loss recovered) of an SAE at its hook on a split, every position,
    computed once per SAE and split: explained variance by verify.fidelity (per-sequence sums, which
    SAELens' evals do not give), loss recovered from the per-token losses of SAELens' own
    get_recons_loss (the same definition as verify.fidelity's, zero-ablation guard included)."""
    spec = subject.manifest.saes[sae_name]
    sae = subject.saes[sae_name]

    def measure():
        tokens = input_tokens(subject, split(subject, which))
        acts = split_acts(subject, subject.model, "model", which, spec.hook)
        ev = fidelity.explained_variance(sae, acts)
        losses = sae_lens_recons_losses(subject.model, sae, spec.hook, tokens)
        recovered = fidelity.recovered_from(losses["ce_loss_without_sae"], losses["ce_loss_with_ablation"],
                                            losses["ce_loss_with_sae"], spec.hook)
        return ev, recovered

    return subject.cached(("sae fidelity", sae_name, which), measure)


def sae_fidelity(subject, sae_name: str | None, p=None) -> list:
    if sae_name is None:  # an optional SAE field left out (feature_tracks_label on a neuron): no SAE is read
        return []
    spec = subject.manifest.saes[sae_name]
    ev, recovered = fidelity_of(subject, sae_name)
    return [Check(f"precondition: SAE {sae_name} explained variance on {spec.hook} (fidelity v{fidelity.DEFINITION_VERSION})", ev,
                  spec.min_explained_variance),
            Check(f"precondition: SAE {sae_name} loss recovered when spliced (fidelity v{fidelity.DEFINITION_VERSION})", recovered,
                  spec.min_loss_recovered)]


@dataclass(frozen=True)
class Quality:
    explained_variance: stats.Estimate
    loss_recovered: stats.Estimate
    l0: stats.Estimate
    dead_fraction: float
    random_explained_variance: stats.Estimate
    random_l0: stats.Estimate
    d_sae: int


def l0_and_dead(sae, acts: torch.Tensor) -> tuple[stats.Estimate, float]:
    fires = sae_feature_acts(sae, acts) > 0  # (sequences, positions, d_sae)
    per_sequence = fires.sum((1, 2)).double().cpu().numpy()
    tokens = np.full(len(per_sequence), float(acts.shape[1]))
    return stats.ratio_estimate(per_sequence, tokens), float((~fires.any(1).any(0)).double().mean())


def measure_sae_quality(subject, p: SAEQuality, which: str = "confirmation") -> Quality:
    sae = subject.saes[p.sae]
    hook = subject.manifest.saes[p.sae].hook
    acts = split_acts(subject, subject.model, "model", which, hook)
    ev, recovered = fidelity_of(subject, p.sae, which)
    l0, dead = l0_and_dead(sae, acts)
    rand = random_like(sae, p.random_seed)
    rand_l0, _ = l0_and_dead(rand, acts)
    return Quality(ev, recovered, l0, dead, fidelity.explained_variance(rand, acts), rand_l0, int(sae.cfg.d_sae))


def judge_sae_quality(m: Quality, p: SAEQuality) -> list:
    v = f"fidelity v{fidelity.DEFINITION_VERSION}"
    return [
        Check(f"SAE {p.sae} explained variance ({v})", m.explained_variance, p.min_explained_variance, p.max_explained_variance),
        Check(f"SAE {p.sae} loss recovered when spliced ({v})", m.loss_recovered, p.min_loss_recovered, p.max_loss_recovered),
        Check(f"SAE {p.sae} L0 (features active per token)", m.l0, p.min_l0, p.max_l0),
        Check(f"SAE {p.sae} share of its {m.d_sae} features that never fire", point(m.dead_fraction), 0.0, p.max_dead_fraction),
        Note(f"baseline: randomly initialised SAE (seed {p.random_seed}) explained variance", m.random_explained_variance),
        Note("baseline: randomly initialised SAE L0", m.random_l0),
    ]


# --- feature_tracks_label ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelTracking:
    correlation: stats.Estimate
    auroc: float
    random_feature: int  # the baseline's best unit: a random SAE's feature, or a random model's neuron
    random_correlation: stats.Estimate
    margin: stats.Estimate
    firing_rate: float
    cases: tuple[int, int]


def label_of(data: TokenData, p: FeatureTracksLabel) -> np.ndarray:
    if p.label_tokens:
        return np.isin(data.tokens, np.asarray(p.label_tokens))
    return data.positions(p.label)


def label_name(p: FeatureTracksLabel) -> str:
    return f"token in {list(p.label_tokens)}" if p.label_tokens else p.label


def best_label_feature(feats: torch.Tensor, label: np.ndarray, mask: np.ndarray) -> int:
    """The feature whose activation correlates most with the label over the masked positions."""
    m = torch.from_numpy(mask).to(feats.device)
    x = feats.double()[m]
    y = torch.from_numpy(label.astype(np.float64)).to(feats.device)[m]
    x, y = x - x.mean(0), y - y.mean()
    corr = (x * y[:, None]).sum(0) / (x.norm(dim=0) * y.norm() + 1e-12)
    return int(torch.nan_to_num(corr, nan=-1.0).argmax())


def unit_acts(subject, p: FeatureTracksLabel, which: str, baseline: bool = False) -> torch.Tensor:
    """(sequences, positions, units) on a split: the claim's SAE's features, or its hook's units
    (`p.feature` / `p.neuron` index them); with `baseline`, those of a random SAE of the same config,
    or of the same hook on a randomly initialised model of the same config (seeded)."""
    if p.sae is not None:
        acts = split_acts(subject, subject.model, "model", which, subject.manifest.saes[p.sae].hook)
        sae = subject.saes[p.sae]
        return sae_feature_acts(random_like(sae, p.random_seed) if baseline else sae, acts)
    if baseline:
        return split_acts(subject, random_model(subject, p.random_seed), f"random model {p.random_seed}", which, p.hook)
    return split_acts(subject, subject.model, "model", which, p.hook)


def measure_feature_label(subject, p: FeatureTracksLabel, which: str = "confirmation") -> LabelTracking:
    data = split(subject, which)
    label, mask = label_of(data, p), data.positions(p.positions)
    cases = (int((label & mask).sum()), int((~label & mask).sum()))
    if min(cases) < p.min_cases:
        raise ValueError(f"only {cases[0]} labelled and {cases[1]} unlabelled positions ({label_name(p)}; min_cases {p.min_cases})")
    unit = unit_acts(subject, p, which)[..., p.feature if p.sae is not None else p.neuron].double().cpu().numpy()
    # baseline: the random SAE's (random model's) best unit, chosen on the selection split
    sel = split(subject, "selection")
    rand_unit = best_label_feature(unit_acts(subject, p, "selection", baseline=True), label_of(sel, p), sel.positions(p.positions))
    rand_acts = unit_acts(subject, p, which, baseline=True)[..., rand_unit].double().cpu().numpy()
    y = label.astype(np.float64)
    ours, base = masked_correlation_sums(unit, y, mask), masked_correlation_sums(rand_acts, y, mask)
    joint = np.concatenate([ours, base], -1)
    return LabelTracking(
        correlation=stats.cluster_bootstrap(ours, stats.pearson),
        auroc=stats.auroc(unit[mask], label[mask]),
        random_feature=rand_unit,
        random_correlation=stats.cluster_bootstrap(base, stats.pearson),
        margin=stats.cluster_bootstrap(joint, lambda t: stats.pearson(t[..., :6]) - stats.pearson(t[..., 6:])),
        firing_rate=float((unit[mask] > 0).mean()),
        cases=cases,
    )


def judge_feature_label(m: LabelTracking, p: FeatureTracksLabel) -> list:
    baseline = (f"random-SAE feature {m.random_feature}" if p.sae is not None
                else f"neuron {m.random_feature} of {p.hook} of a randomly initialised model (seed {p.random_seed})")
    best = "best random-SAE feature's" if p.sae is not None else f"the randomly initialised model's best unit of {p.hook}, its"
    return [
        Check(f"r({p.unit()} act, {label_name(p)}) over {p.positions} positions "
              f"({m.cases[0]} labelled, {m.cases[1]} not)", m.correlation, p.min_correlation, p.max_correlation),
        Check("AUROC of the activation for the label", point(m.auroc), p.min_auroc),
        Check(f"margin over {baseline}", m.margin, p.min_margin_over_random),
        Note(f"baseline: {best} r (chosen on the selection split)", m.random_correlation),
        Note("firing rate (activation > 0)" if p.sae is None else "feature firing rate", point(m.firing_rate)),
    ]


register_domain(Domain("tokens", sae_fidelity=sae_fidelity))
register_claim(Claim("attention_pattern", "tokens", AttentionPattern, measure_attention, judge_attention, version=1,
                     summary="head L.H attends to a pattern's key (previous token, induction target, duplicate, first token)"))
register_claim(Claim("ablation_effect", "tokens", AblationEffect, measure_ablation, judge_ablation, version=1,
                     summary="ablating a hook or one head costs the target positions and leaves the control positions"))
register_claim(Claim("sae_quality", "tokens", SAEQuality, measure_sae_quality, judge_sae_quality, version=1,
                     summary="an SAE's explained variance, loss recovered, L0 and dead features"))
register_claim(Claim("feature_tracks_label", "tokens", FeatureTracksLabel, measure_feature_label, judge_feature_label, version=1,
                     summary="an SAE feature's (or neuron's) activation tracks a token-level label, above a random SAE's (model's) best unit"))
