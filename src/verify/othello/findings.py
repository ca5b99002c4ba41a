"""Othello findings F3, F4, F5: parameters (a manifest's [claims.*] tables), measurements, checks.

Definitions used (they fix the original notebook's mistakes, see docs/findings.md):
- "square is empty" means board state == 0 after the current move (not `state < 0`);
- the feature's *activation* (not its being off) is correlated with emptiness, within move number:
  both are centred on their mean at each of the 59 positions before pooling, so a direction that
  only tracks how far the game has gone (squares fill up over time) scores about 0;
- squares are named A0..H7 from the 0..63 index.
Every statistic is computed on the confirmation split; features and neurons are chosen on the
selection split (by verify.cli.discover_othello), so nothing is selected on the games it is
confirmed on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch

from verify import fidelity, stats, timing
from verify.activations import hook_activations, sae_feature_acts
from verify.hooks import residual_layer
from verify.interventions import random_like, run_with_hooks
from verify.othello import rules as othello
from verify.othello.data import input_tokens, positions, split
from verify.params import Correlation, Count, FeatureOf, Fraction, Hook, Range, SAEName, UnitOf
from verify.registry import Claim, DataSource, Domain, register_claim, register_domain, register_source
from verify.verdicts import Check, Note, point

FINGERPRINT_GAMES = 16


def fingerprint_batch(subject) -> tuple[torch.Tensor, str]:
    """The first confirmation games: fixed by the manifest's seed."""
    games = split(subject, "confirmation")
    return (input_tokens(subject, games)[:FINGERPRINT_GAMES],
            f"first {FINGERPRINT_GAMES} confirmation games (seed {subject.manifest.data.confirmation_seed})")


register_source(DataSource("othello-synthetic", "othello", fingerprint_batch=fingerprint_batch))


@dataclass(frozen=True)
class FeatureTracksEmptySquare:
    sae: SAEName
    feature: Annotated[int, FeatureOf("sae")]
    square: str  # A0..H7
    min_correlation: Correlation
    max_correlation: Correlation = 1.0
    min_auroc: Fraction = 0.5
    min_margin_over_random: float = 0.0  # over the best random-SAE feature chosen the same way
    random_seed: int = 0
    min_cases: Count = 100  # empty and occupied (game, position) cases each; fewer: not measurable

    def __post_init__(self) -> None:
        othello.parse_square(self.square)


@dataclass(frozen=True)
class NeuronFiresOnOneMove:
    neuron: Annotated[int, UnitOf("hook")]
    move: str  # A0..H7
    # "fires only on one move": when it fires, the move is mostly M (a floor below 0.5 would not say so) ...
    min_precision: Annotated[float, Range(0.5, 1.0)]
    # ... far more often than for a neuron that ignores the move (precision / P(move == M)) ...
    min_lift: Annotated[float, Range(1.0, None)]
    # ... and M leads the most frequent other move by this much (precision(M) - precision(that move))
    min_margin: Fraction
    hook: Hook = "blocks.0.mlp.hook_post"
    min_recall: Fraction = 0.0
    min_fires: Count = 20  # fewer firings than this make the precision meaningless

    def __post_init__(self) -> None:
        othello.square_to_token(othello.parse_square(self.move))


@dataclass(frozen=True)
class LegalMoveRate:
    min_rate: Fraction
    max_rate: Fraction = 1.0


# --- F3 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureEmptiness:
    correlation: stats.Estimate
    auroc: float
    random_feature: int
    random_correlation: stats.Estimate
    margin: stats.Estimate  # correlation - random_correlation, resampled jointly
    firing_rate: float
    raw_correlation: stats.Estimate  # without centring by position: inflated by the game's progress


def split_activations(subject, which: str, hook: str) -> torch.Tensor:
    """Hook activations on a split, computed once per subject (a copy with other weights has its own)."""
    return games_activations(subject, split(subject, which), which, hook)


def games_activations(subject, games, name: str, hook: str) -> torch.Tensor:
    """Hook activations of the subject's model on `games`, cached under `name`, which must name
    these games. The residual-stream hooks between two blocks (blocks.L.hook_resid_pre,
    blocks.L-1.hook_resid_post) read one tensor, cached once under L."""
    between = residual_layer(hook)
    return subject.cached(("acts", name, hook if between is None else f"residual entering block {between}"),
                          lambda: hook_activations(subject.model, input_tokens(subject, games), hook))


def within_position(x):
    """Centre (games, positions, ...) values on their mean at each position (numpy or torch)."""
    return x - x.mean(0, keepdims=True) if isinstance(x, np.ndarray) else x - x.mean(0, keepdim=True)


def best_feature_for_square(feats: torch.Tensor, empty: np.ndarray) -> int:
    """Feature whose activation correlates most with emptiness within move number (selection only)."""
    x = within_position(feats.double()).reshape(-1, feats.shape[-1])
    y = within_position(torch.as_tensor(empty, dtype=torch.float64, device=x.device)).reshape(-1)
    corr = (x * y[:, None]).sum(0) / (x.norm(dim=0) * y.norm() + 1e-12)
    return int(torch.nan_to_num(corr, nan=-1.0).argmax())


def measure_feature_emptiness(subject, p: FeatureTracksEmptySquare) -> FeatureEmptiness:
    square = othello.parse_square(p.square)
    sae = subject.saes[p.sae]
    hook = subject.manifest.saes[p.sae].hook
    games = split(subject, "confirmation")
    empty = positions(games, games.states[..., square] == othello.EMPTY)
    cases = min(int(empty.sum()), int((~empty).sum()))
    if cases < p.min_cases:
        raise ValueError(f"only {cases} {'empty' if empty.sum() == cases else 'occupied'} cases of {p.square} (min_cases {p.min_cases})")
    resid = split_activations(subject, "confirmation", hook)
    acts = sae_feature_acts(sae, resid)[..., p.feature].double().cpu().numpy()

    # baseline: a random SAE of the same shape, its best feature for this square chosen on the
    # selection split exactly as discovery chose ours, then measured on the confirmation split
    rand = random_like(sae, p.random_seed)
    sel = split(subject, "selection")
    sel_empty = positions(sel, sel.states[..., square] == othello.EMPTY)
    rand_feature = best_feature_for_square(sae_feature_acts(rand, split_activations(subject, "selection", hook)), sel_empty)
    rand_acts = sae_feature_acts(rand, resid)[..., rand_feature].double().cpu().numpy()

    y = within_position(empty.astype(np.float64))
    ours = stats.correlation_sums(within_position(acts), y)
    base = stats.correlation_sums(within_position(rand_acts), y)
    joint = np.concatenate([ours, base], -1)
    return FeatureEmptiness(
        correlation=stats.cluster_bootstrap(ours, stats.pearson),
        auroc=stats.auroc(acts, empty),
        random_feature=rand_feature,
        random_correlation=stats.cluster_bootstrap(base, stats.pearson),
        margin=stats.cluster_bootstrap(joint, lambda t: stats.pearson(t[..., :6]) - stats.pearson(t[..., 6:])),
        firing_rate=float((acts > 0).mean()),
        raw_correlation=stats.correlation_estimate(acts, empty),
    )


def judge_feature_emptiness(m: FeatureEmptiness, p: FeatureTracksEmptySquare) -> list:
    return [
        Check(f"r(feature {p.feature} act, {p.square} empty | move number)", m.correlation, p.min_correlation, p.max_correlation),
        Check("AUROC of the activation for emptiness", point(m.auroc), p.min_auroc),
        Check(f"margin over random-SAE feature {m.random_feature}", m.margin, p.min_margin_over_random),
        Note("random-SAE baseline r | move number", m.random_correlation),
        Note("r without centring by move number", m.raw_correlation),
        Note("feature firing rate", point(m.firing_rate)),
    ]


# --- F4 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NeuronMove:
    precision: stats.Estimate  # P(move == M | fires)
    recall: stats.Estimate  # P(fires | move == M)
    lift: stats.Estimate  # precision / P(move == M)
    second_move: str  # the other move the neuron fires on most often (on all the games): the runner-up
    second_precision: stats.Estimate  # P(move == second_move | fires)
    margin: stats.Estimate  # precision - the best other move's precision, that move re-chosen in each resample
    fires: int
    chance: float  # P(move == M) over all positions: the precision of a neuron that ignores the move


def neuron_move_stats(fires: np.ndarray, tokens: np.ndarray, token: int) -> NeuronMove:
    """fires, tokens (games, positions): whether the neuron fires, and the current move's token, at
    each position -> the selectivity of 'fires => move == token', with intervals over games."""
    n_tokens = len(othello.TOKEN_TO_SQUARE)
    onehot = np.eye(n_tokens)[tokens]  # (games, positions, tokens)
    per_game = np.concatenate([
        fires.sum(1, keepdims=True),  # [0] firings
        (onehot * fires[..., None]).sum(1),  # [1 : 1 + n] firings by current move
        onehot.sum(1),  # [1 + n : 1 + 2n] positions by current move
        np.full((len(fires), 1), fires.shape[1]),  # [-1] positions
    ], axis=1).astype(np.float64)
    by_move = lambda t: t[..., 1 : 1 + n_tokens]  # noqa: E731
    others = np.ones(n_tokens, dtype=bool)
    others[[0, token]] = False  # token 0 is no move
    second = int(np.flatnonzero(others)[by_move(per_game.sum(0))[others].argmax()])

    def share(t, k):
        with np.errstate(invalid="ignore", divide="ignore"):
            return by_move(t)[..., k] / t[..., 0]

    def lift(t):
        with np.errstate(invalid="ignore", divide="ignore"):
            return share(t, token) / (t[..., 1 + n_tokens + token] / t[..., -1])

    def recall(t):
        with np.errstate(invalid="ignore", divide="ignore"):
            return by_move(t)[..., token] / t[..., 1 + n_tokens + token]

    def margin(t):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (by_move(t)[..., token] - by_move(t)[..., others].max(-1)) / t[..., 0]

    totals = per_game.sum(0)
    return NeuronMove(
        precision=stats.cluster_bootstrap(per_game, lambda t: share(t, token)),
        recall=stats.cluster_bootstrap(per_game, recall),
        lift=stats.cluster_bootstrap(per_game, lift),
        second_move=othello.square_label(othello.token_to_square(second)),
        second_precision=stats.cluster_bootstrap(per_game, lambda t: share(t, second)),
        margin=stats.cluster_bootstrap(per_game, margin),
        fires=int(totals[0]),
        chance=float(totals[1 + n_tokens + token] / totals[-1]),
    )


def measure_neuron_move(subject, p: NeuronFiresOnOneMove) -> NeuronMove:
    games = split(subject, "confirmation")
    fires = (split_activations(subject, "confirmation", p.hook)[..., p.neuron] > 0).cpu().numpy()
    if fires.sum() < p.min_fires:
        raise ValueError(f"{p.hook}[{p.neuron}] fires {int(fires.sum())} times (min_fires {p.min_fires}): its precision would mean nothing")
    return neuron_move_stats(fires, input_tokens(subject, games).cpu().numpy(), othello.square_to_token(othello.parse_square(p.move)))


def judge_neuron_move(m: NeuronMove, p: NeuronFiresOnOneMove) -> list:
    return [
        Note(f"firings of {p.hook}[{p.neuron}]", point(m.fires)),
        Check(f"precision P(move == {p.move} | fires)", m.precision, p.min_precision, 1.0),
        Check(f"lift over chance P(move == {p.move} | fires) / P(move == {p.move})", m.lift, p.min_lift),
        Check(f"margin over the most frequent other move {m.second_move}: precision({p.move}) - precision({m.second_move})",
              m.margin, p.min_margin),
        Check(f"recall P(fires | move == {p.move})", m.recall, p.min_recall, 1.0),
        Note(f"precision P(move == {m.second_move} | fires)", m.second_precision),
        Note(f"chance precision P(move == {p.move})", point(m.chance)),
    ]


# --- F5 -------------------------------------------------------------------------------------------

def measure_legal_move_rate(subject, p: LegalMoveRate | None = None) -> stats.Estimate:
    """Fraction of positions whose top-1 prediction is a legal next move (resampling games), computed
    once per subject: the claim and the preconditions that rest on it share it."""
    return subject.cached(("legal move rate",), lambda: legal_move_rate(subject))


def shared_stream_layer(subject) -> int | None:
    """The deepest block whose entering residual stream a declared SAE or claim hook reads (and so is
    cached for the confirmation games anyway), below the last block's output; None if none is."""
    hooks = [spec.hook for spec in subject.manifest.saes.values()]
    hooks += [getattr(params, "hook", None) for params in subject.manifest.claims.values()]
    layers = [residual_layer(h) for h in hooks if isinstance(h, str)]
    layers = [layer for layer in layers if layer is not None and 0 < layer < subject.model.cfg.n_layers]
    return max(layers, default=None)


@timing.stage("forward")
@torch.inference_mode()
def legal_move_rate(subject, batch_size: int = 256) -> stats.Estimate:
    """From the confirmation games' residual stream where a claim or SAE reads it (`shared_stream_layer`):
    the blocks before it run once for all of them, the same batches (hook_activations' 256 games)."""
    games = split(subject, "confirmation")
    layer = shared_stream_layer(subject)
    inputs = input_tokens(subject, games) if layer is None else \
        split_activations(subject, "confirmation", f"blocks.{layer}.hook_resid_pre")
    legal_tokens = np.zeros(games.legal.shape[:2] + (61,), dtype=bool)
    legal_tokens[..., 1:] = games.legal[..., othello.TOKEN_TO_SQUARE[1:]]
    legal_tokens = torch.from_numpy(positions(games, legal_tokens)).to(subject.device)
    hits = []
    for i in timing.steps(range(0, len(inputs), batch_size)):
        top = run_with_hooks(subject.model, inputs[i : i + batch_size], [], layer).argmax(-1)
        hits.append(legal_tokens[i : i + batch_size].gather(-1, top[..., None])[..., 0].sum(1))
    hits = torch.cat(hits).cpu().numpy()
    return stats.ratio_estimate(hits, np.full(len(hits), inputs.shape[1]))


def judge_legal_move_rate(rate: stats.Estimate, p: LegalMoveRate) -> list:
    return [Check("top-1 prediction is a legal move", rate, p.min_rate, p.max_rate)]


# --- preconditions: what the claims' words assume ----------------------------------------------------

def competence(subject, p=None) -> list:
    """The legal-move rate the other Othello claims rest on, checked against the manifest's bounds."""
    bounds = subject.manifest.claims["legal_move_rate"]
    rate = measure_legal_move_rate(subject)
    return [dataclasses.replace(c, what="precondition: " + c.what) for c in judge_legal_move_rate(rate, bounds)]


def sae_fidelity(subject, sae_name: str, p=None) -> list:
    """The SAE reconstructs this model on the confirmation games (verify.fidelity)."""
    spec, sae = subject.manifest.saes[sae_name], subject.saes[sae_name]
    games = split(subject, "confirmation")
    tokens = input_tokens(subject, games)
    targets = torch.from_numpy(games.tokens[:, 1 : othello.MODEL_INPUT_LENGTH + 1]).to(subject.device)  # logits at t predict move t + 1
    start = residual_layer(spec.hook)

    def measure():
        acts = split_activations(subject, "confirmation", spec.hook)
        ev = fidelity.explained_variance(sae, acts)
        # a residual hook's activations are the stream entering its block: the forwards start there
        inputs, layer = (tokens, None) if start is None or start >= subject.model.cfg.n_layers else (acts, start)
        recovered = fidelity.loss_recovered(lambda hooks: fidelity.summed_cross_entropy(
            subject.model, inputs, targets, slice(None), hooks, start_at_layer=layer), spec.hook, sae)
        return ev, recovered

    ev, recovered = subject.cached(("sae fidelity", sae_name), measure)
    return [Check(f"precondition: SAE {sae_name} explained variance on {spec.hook} (fidelity v{fidelity.DEFINITION_VERSION})", ev,
                  spec.min_explained_variance),
            Check(f"precondition: SAE {sae_name} loss recovered when spliced (fidelity v{fidelity.DEFINITION_VERSION})", recovered,
                  spec.min_loss_recovered)]


register_domain(Domain("othello", sae_fidelity=sae_fidelity, competence=competence, competence_claim="legal_move_rate"))
from verify.othello import figures  # noqa: E402 - draws on the definitions above

register_claim(Claim("legal_move_rate", "othello", LegalMoveRate, measure_legal_move_rate, judge_legal_move_rate, version=1,
                     summary="F5: the top-1 prediction is a legal move"))
register_claim(Claim("feature_tracks_empty_square", "othello", FeatureTracksEmptySquare, measure_feature_emptiness,
                     judge_feature_emptiness, version=1,
                     summary="F3: an SAE feature's activation tracks 'square is empty', within move number",
                     assumes_competence=True, figures=figures.feature_figures))  # and the SAE's fidelity: its `sae` names one
register_claim(Claim("neuron_fires_on_one_move", "othello", NeuronFiresOnOneMove, measure_neuron_move, judge_neuron_move, version=2,
                     summary="F4: the neuron fires on one move: when it fires, the current move is mostly that square, "
                             "far above chance and well ahead of any other",
                     assumes_competence=True, figures=figures.neuron_figures))
