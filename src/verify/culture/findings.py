"""Culture-puzzle findings F1, F2, F5: parameters, measurements, checks.

"Solved" means every answer cell's teacher-forced argmax is right (= greedy generation is right).
Rates are taken, by default (`puzzles = "determined"`), on the puzzles whose worked example allows
exactly one answer, the one scored, and that hold no degenerate pair (verify.culture.oracle.counts;
the claims' metric version 3, with oracle definition 2; version 2 read the question's pair as shown
and did not compare the one answer with the scored one): on an undetermined puzzle an exact-match
verdict, and so "broken" or "restored", is partly a coin flip. `puzzles = "all"` counts every
puzzle (version 1's definition).
"Broken by ablation" means solved by the clean model and not solved with the hook zeroed; its rate
is over all puzzles of the task, as in the notebook (6/100 contact puzzles). F1's words, "breaks one
task", are judged by the margin of that task's broken rate over the most broken other task's
(version 3). Intervals resample puzzles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import torch

from verify import fidelity, stats
from verify.culture import data as culture_data
from verify.culture.evaluate import Residual, clean_verdicts_and_residual, teacher_forced_verdicts
from verify.culture.layout import PuzzleLayout
from verify.hooks import hook_layer
from verify.interventions import sae_splice, shuffled_decoder, zero_ablation
from verify.params import Count, Fraction, Hook, Range, SAEName
from verify.registry import Claim, DataSource, Domain, register_claim, register_domain, register_source
from verify.culture import oracle
from verify.verdicts import Check, Note, point

SHUFFLE_SEED = 0  # seeds the decoder permutation of the splice claim's baseline
PUZZLE_SETS = ("determined", "all")


def check_puzzle_set(name: str) -> None:
    if name not in PUZZLE_SETS:
        raise ValueError(f"puzzles must be one of {', '.join(PUZZLE_SETS)}, got {name!r}")


@dataclass(frozen=True)
class PuzzleGrid:
    """The culture sources' own [data] keys: the puzzle grid (the real checkpoints use 10 x 10)."""

    grid_height: int = 10
    grid_width: int = 10

    def __post_init__(self) -> None:
        PuzzleLayout(self.grid_height, self.grid_width)  # refuses sizes no layout has


def open_manifest_dataset(manifest):
    return culture_data.open_dataset(manifest.data.path, manifest.dir)


FINGERPRINT_PUZZLES = 2  # per task


def fingerprint_batch(subject) -> tuple[torch.Tensor, str]:
    """The first confirmation puzzles of every task, without their last token (the model's inputs)."""
    rows = torch.cat([puzzles(subject, task)[:FINGERPRINT_PUZZLES] for task in culture_data.TASKS])
    return (rows[:, :-1].to(subject.device),
            f"first {FINGERPRINT_PUZZLES} confirmation puzzles of each task (seed {subject.manifest.data.confirmation_seed})")


register_source(DataSource("culture-synthetic", "culture", options=PuzzleGrid, fingerprint_batch=fingerprint_batch))
register_source(DataSource("culture-dataset", "culture", options=PuzzleGrid, open=open_manifest_dataset, needs_path=True,
                           files=lambda m: culture_data.dataset_files(m.data.path, m.dir), fingerprint_batch=fingerprint_batch))


@dataclass(frozen=True)
class SolvedRate:
    min_rate: Fraction
    max_rate: Fraction = 1.0
    tasks: tuple[str, ...] = ()  # default: every task
    min_rate_by_task: Annotated[dict[str, float], Range(0.0, 1.0)] = field(default_factory=dict)  # task -> its own lower bound, instead of min_rate
    puzzles: str = "determined"  # which puzzles the rates count: "determined" or "all"

    def __post_init__(self) -> None:
        check_puzzle_set(self.puzzles)
        for task in (*self.tasks, *self.min_rate_by_task):
            culture_data.check_task(task)
        unused = [t for t in self.min_rate_by_task if self.tasks and t not in self.tasks]
        if unused:
            raise ValueError(f"min_rate_by_task gives a bound to {unused[0]!r}, which `tasks` leaves out")

    def lower_bound(self, task: str) -> float:
        return self.min_rate_by_task.get(task, self.min_rate)


@dataclass(frozen=True)
class AblationBreaksOneTask:
    hook: Hook
    task: str
    min_broken: Fraction  # a: task's broken fraction must reach this
    max_broken_other: Fraction  # b: every other task's broken fraction must stay below this
    min_margin: Fraction  # task's broken fraction minus the most broken other task's must reach this (> 0)
    puzzles: str = "determined"  # which puzzles the rates count: "determined" or "all"

    def __post_init__(self) -> None:
        check_puzzle_set(self.puzzles)
        culture_data.check_task(self.task)
        if not self.min_margin > 0:
            raise ValueError(f"min_margin must be > 0 (breaking one task means breaking it more than any other), got {self.min_margin}")


@dataclass(frozen=True)
class SAESpliceRestores:
    sae: SAEName
    task: str  # whose ablation-broken puzzles are restored (the ablation hook is the SAE's hook)
    min_restored: Fraction  # c
    max_clean_change: Fraction  # d: |solved rate with splice - clean solved rate| per task
    min_cases: Count = 20  # ablation-broken puzzles needed for a restored fraction; fewer: not measurable
    puzzles: str = "determined"  # which puzzles the rates count: "determined" or "all"

    def __post_init__(self) -> None:
        check_puzzle_set(self.puzzles)
        culture_data.check_task(self.task)


def layout(subject) -> PuzzleLayout:
    grid = subject.manifest.data.options
    return PuzzleLayout(grid.grid_height, grid.grid_width, 4, True)


def puzzles(subject, task: str, which: str = "confirmation") -> torch.Tensor:
    """The subject's puzzles of one task for a split, made or loaded once per session."""
    return split(subject, task, which).tokens


def split(subject, task: str, which: str = "confirmation") -> culture_data.Split:
    """One task's puzzles of a split without repeats, the confirmation split sharing none with the
    selection split: a synthetic split skips such puzzles and draws on, keeping its size; a
    dataset's rows lose their repeats, and a dataset whose confirmation rows meet its selection rows
    is refused. Made or loaded once per session."""
    culture_data.check_task(task)
    d = subject.manifest.data

    def make() -> culture_data.Split:
        held_out_from = puzzles(subject, task, "selection") if which == "confirmation" else None
        if d.source == "culture-synthetic":
            from verify.culture.tasks import cached_split

            return cached_split(task, d.size, d.seed(which), layout(subject), held_out_from)
        dataset = subject.data("opened", lambda: open_manifest_dataset(subject.manifest))
        start = {"selection": 0, "confirmation": d.size}[which]
        rows = culture_data.without_repeats(culture_data.task_rows(dataset, task, start, start + d.size,
                                                                         layout(subject).length))
        if held_out_from is not None:  # rows of one dataset: prove they are held out
            culture_data.check_disjoint(held_out_from, rows.tokens, task)
        return rows

    return subject.data(("puzzles", task, which), make)


def redrawn_note(subject, task: str) -> list:
    """A note where keeping the splits held out and free of repeats replaced or removed puzzles."""
    confirmation, selection = split(subject, task, "confirmation"), split(subject, task, "selection")
    total = confirmation.shared + confirmation.repeated
    if not total + selection.repeated:
        return []
    how = "drawn again" if subject.manifest.data.source == "culture-synthetic" else "removed"
    return [Note(f"{task}: confirmation puzzles {how} to keep the split held out and free of repeats "
                 f"({confirmation.shared} in the selection split, {confirmation.repeated} repeats; "
                 f"selection split: {selection.repeated} repeats {how})", point(total))]


def intervention_layer(subject) -> int | None:
    """The first block that the subject's ablation and splice claims intervene in (their hook's,
    their SAE's), where the clean forward keeps the residual stream; None when no claim does."""
    claims = subject.manifest.claims
    hooks = [claims[name].hook for name in ("ablation_breaks_one_task",) if name in claims]
    hooks += [subject.manifest.saes[claims[name].sae].hook for name in ("sae_splice_restores",) if name in claims]
    layers = [hook_layer(hook) for hook in hooks]
    return None if not layers or None in layers else min(layers)


def clean_run(subject, task: str, which: str) -> tuple[np.ndarray, Residual | None]:
    """(N,) bool clean solved flags, and the residual stream entering the intervention layer (None
    without one), computed once per subject, task and split."""
    def run():
        tokens, grid, layer = puzzles(subject, task, which), layout(subject), intervention_layer(subject)
        if layer is None:
            return teacher_forced_verdicts(subject.model, tokens, grid).cpu().numpy(), None
        flags, stream = clean_verdicts_and_residual(subject.model, tokens, grid, layer)
        return flags.cpu().numpy(), stream

    return subject.cached(("clean run", task, which), run)


def verdicts(subject, task: str, hooks=(), which: str = "confirmation") -> np.ndarray:
    """(N,) bool solved flags. Clean: computed once per subject, task and split. With hooks: from
    the clean residual stream where every hook lies at or after the block it enters (exact: the
    blocks before it would compute the same stream again), else by a whole forward."""
    clean, start = clean_run(subject, task, which)
    if not hooks:
        return clean
    if start is not None and any((hook_layer(name) or 0) < start.layer for name, _ in hooks):
        start = None
    return teacher_forced_verdicts(subject.model, puzzles(subject, task, which), layout(subject), hooks, start=start).cpu().numpy()


def rate(flags: np.ndarray) -> stats.Estimate:
    return stats.ratio_estimate(flags.astype(float), np.ones(len(flags)))


def counted(subject, task: str, which: str, puzzle_set: str) -> np.ndarray:
    """(N,) bool: the puzzles a rate counts. "determined": one valid answer, the one scored, and no
    degenerate pair (verify.culture.oracle.counts)."""
    tokens = puzzles(subject, task, which)
    if puzzle_set == "all":
        return np.ones(len(tokens), dtype=bool)

    return subject.data(("determined", task, which), lambda: oracle.counted(tokens, task, layout(subject)))


def solved_any_valid(subject, task: str, which: str) -> np.ndarray:
    """(N,) bool: the model's answer is one the worked example allows. By the teacher-forcing
    argument, greedy generation yields answer a iff the argmax is right at every cell with a in place."""
    flags = verdicts(subject, task, which=which).copy()
    tokens, grid = puzzles(subject, task, which), layout(subject)
    answers = {int(i): oracle.answer_grids(tokens[i], task, grid) for i in np.flatnonzero(~flags & ~counted(subject, task, which, "determined"))}
    # round k tries the k-th answer of every puzzle no earlier answer solved, in one batched forward
    for k in range(max((len(a) for a in answers.values()), default=0)):
        tried = [i for i, a in answers.items() if k < len(a) and not flags[i]]
        if not tried:
            break
        rows = tokens[tried].clone()
        rows[:, grid.answer_slice] = torch.from_numpy(np.stack([answers[i][k] for i in tried]))
        flags[np.array(tried)[teacher_forced_verdicts(subject.model, rows, grid).cpu().numpy()]] = True
    return flags


# --- F5 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSolved:
    rate: stats.Estimate  # on the counted puzzles
    counted: int
    excluded_share: float  # puzzles not counted: undetermined, degenerate, or allowing only another answer
    rate_all: stats.Estimate  # exact match on every puzzle
    rate_any_valid: stats.Estimate  # any answer the worked example allows, on every puzzle
    redrawn: list  # a Note where puzzles were replaced or removed to keep the splits held out (redrawn_note)


def measure_solved_rate(subject, p: SolvedRate, which: str = "confirmation") -> dict[str, TaskSolved]:
    out = {}
    for task in p.tasks or culture_data.TASKS:
        flags, mask = verdicts(subject, task, which=which), counted(subject, task, which, p.puzzles)
        out[task] = TaskSolved(rate(flags[mask]), int(mask.sum()), float(1 - mask.mean()), rate(flags),
                               rate(solved_any_valid(subject, task, which)), redrawn_note(subject, task))
    return out


def judge_solved_rate(rates: dict[str, TaskSolved], p: SolvedRate) -> list:
    checks = []
    for task, r in rates.items():
        checks += [Check(f"solved rate {task} ({p.puzzles} puzzles: {r.counted})", r.rate, p.lower_bound(task), p.max_rate),
                   Note(f"{task}: share of puzzles not counted (undetermined, degenerate, or allowing only another answer)",
                        point(r.excluded_share)),
                   Note(f"{task}: exact-match solved rate on all puzzles", r.rate_all),
                   Note(f"{task}: solved rate accepting any answer the worked example allows", r.rate_any_valid),
                   *r.redrawn]
    return checks


# --- F1 -------------------------------------------------------------------------------------------

def broken_by(subject, task: str, hooks, which: str = "confirmation") -> np.ndarray:
    """(N,) bool: solved clean, not solved with `hooks`."""
    return verdicts(subject, task, which=which) & ~verdicts(subject, task, hooks, which)


@dataclass(frozen=True)
class Ablation:
    broken: dict  # task -> Estimate of its broken fraction
    margin: stats.Estimate  # the claim's task's broken fraction minus the most broken other task's
    runner_up: str  # the most broken other task (on all counted puzzles)


def measure_ablation(subject, p: AblationBreaksOneTask, which: str = "confirmation") -> Ablation:
    culture_data.check_task(p.task)
    flags = {task: broken_by(subject, task, [zero_ablation(p.hook)], which)[counted(subject, task, which, p.puzzles)]
             for task in culture_data.TASKS}
    margin, runner_up = margin_over_others(flags, p.task)
    return Ablation({task: rate(f) for task, f in flags.items()}, margin, runner_up)


def margin_over_others(flags: dict[str, np.ndarray], task: str, seed: int = 0) -> tuple[stats.Estimate, str]:
    """(rate of `task` - the highest rate of the other tasks, with its interval; that other task).
    The tasks are separate puzzle sets, so each resample draws every task's puzzles on their own
    (stats.N_BOOT resamples, a percentile interval as stats.cluster_bootstrap's), and the highest
    other rate is taken again in each resample: the interval covers which task is the runner-up too."""
    def resampled(f: np.ndarray) -> np.ndarray:
        if not len(f):  # a task without counted puzzles has no rate
            return np.full(stats.N_BOOT, np.nan)
        return rng.multinomial(len(f), np.full(len(f), 1 / len(f)), size=stats.N_BOOT) @ f.astype(float) / len(f)

    rng = np.random.default_rng(seed)
    full = {t: f.mean() if len(f) else np.nan for t, f in flags.items()}
    boot = {t: resampled(f) for t, f in flags.items()}
    others = [t for t in flags if t != task]
    runner_up = max(others, key=lambda t: np.nan_to_num(full[t], nan=-np.inf))  # a task without puzzles is no rival
    value = full[task] - full[runner_up]
    diffs = boot[task] - np.fmax.reduce([boot[t] for t in others])  # fmax: nan only where every other task is
    alpha = (1 - stats.CONFIDENCE) / 2
    lo, hi = np.nanquantile(diffs, [alpha, 1 - alpha]) if np.isfinite(diffs).any() else (np.nan, np.nan)
    return stats.Estimate(float(value), float(lo), float(hi)), runner_up


def judge_ablation(m: Ablation, p: AblationBreaksOneTask) -> list:
    checks = [Check(f"broken by zeroing {p.hook}: {p.task}", m.broken[p.task], p.min_broken)]
    checks += [Check(f"broken by zeroing {p.hook}: {task}", est, hi=p.max_broken_other) for task, est in m.broken.items() if task != p.task]
    checks.append(Check(f"margin: broken {p.task} - broken {m.runner_up} (the most broken other task)", m.margin, p.min_margin))
    return checks


# --- F2 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Splice:
    restored: stats.Estimate  # fraction of ablation-broken puzzles solved with the splice
    n_broken: int
    clean_change: dict  # task -> Estimate of (splice solved rate - clean solved rate)
    baseline_restored: stats.Estimate  # the same, splicing the SAE with its decoder rows shuffled


def measure_splice(subject, p: SAESpliceRestores, which: str = "confirmation") -> Splice:
    hook = subject.manifest.saes[p.sae].hook
    splice = [sae_splice(hook, subject.saes[p.sae])]
    broken = broken_by(subject, p.task, [zero_ablation(hook)], which) & counted(subject, p.task, which, p.puzzles)
    if broken.sum() < p.min_cases:
        raise ValueError(f"zeroing {hook} breaks {int(broken.sum())} {p.task} puzzles (min_cases {p.min_cases}): too few to say what a splice restores")
    spliced = {task: verdicts(subject, task, splice, which) for task in culture_data.TASKS}
    change = {}
    for task in culture_data.TASKS:
        mask = counted(subject, task, which, p.puzzles)
        clean, with_splice = verdicts(subject, task, which=which)[mask], spliced[task][mask]
        diff = np.stack([with_splice.astype(float) - clean.astype(float), np.ones(len(clean))], -1)
        change[task] = stats.cluster_bootstrap(diff, stats.ratio)
    null = verdicts(subject, p.task, [sae_splice(hook, shuffled_decoder(subject.saes[p.sae], SHUFFLE_SEED))], which)
    return Splice(restored_fraction(spliced[p.task], broken), int(broken.sum()), change, restored_fraction(null, broken))


def restored_fraction(solved: np.ndarray, broken: np.ndarray) -> stats.Estimate:
    """Fraction of the `broken` puzzles that are `solved` (nan when none is broken)."""
    if not broken.any():
        return stats.Estimate(float("nan"), float("nan"), float("nan"))
    return stats.ratio_estimate(solved[broken].astype(float), np.ones(broken.sum()))


def judge_splice(m: Splice, p: SAESpliceRestores) -> list:
    checks = [Note(f"puzzles of {p.task} broken by the ablation", stats.Estimate(m.n_broken, m.n_broken, m.n_broken)),
              Check(f"restored by the {p.sae} splice", m.restored, p.min_restored),
              Note(f"baseline: restored by the {p.sae} splice with its decoder rows shuffled", m.baseline_restored)]
    checks += [Check(f"splice - clean solved rate: {task}", est, -p.max_clean_change, p.max_clean_change) for task, est in m.clean_change.items()]
    return checks


# --- preconditions: what the claims' words assume ----------------------------------------------------

def competence(subject, task: str) -> list:
    """The solved rate of `task` that an ablation or splice claim on it rests on, against the
    manifest's solved_rate bound for that task."""
    bounds = subject.manifest.claims["solved_rate"]
    flags = verdicts(subject, task)[counted(subject, task, "confirmation", bounds.puzzles)]
    return [Check(f"precondition: solved rate {task} ({bounds.puzzles} puzzles)", rate(flags), bounds.lower_bound(task), bounds.max_rate)]


def sae_fidelity(subject, sae_name: str, task: str) -> list:
    """The SAE reconstructs this model on the claim's confirmation puzzles (verify.fidelity)."""
    spec, sae = subject.manifest.saes[sae_name], subject.saes[sae_name]
    grid = layout(subject)
    tokens = puzzles(subject, task).to(subject.device)
    inputs, targets, layer = tokens[:, :-1], tokens[:, grid.answer_slice], None
    _, start = clean_run(subject, task, "confirmation")
    if start is not None and (hook_layer(spec.hook) or 0) >= start.layer:  # run only the blocks from the clean stream on
        inputs, layer = start.stream, start.layer

    def measure():
        from verify.activations import hook_activations

        ev = fidelity.explained_variance(sae, hook_activations(subject.model, inputs, spec.hook, start_at_layer=layer))
        recovered = fidelity.loss_recovered(lambda hooks: fidelity.summed_cross_entropy(
            subject.model, inputs, targets, grid.answer_logits_slice, hooks, start_at_layer=layer), spec.hook, sae)
        return ev, recovered

    ev, recovered = subject.cached(("sae fidelity", sae_name, task), measure)
    return [Check(f"precondition: SAE {sae_name} explained variance on {spec.hook}, {task} puzzles (fidelity v{fidelity.DEFINITION_VERSION})",
                  ev, spec.min_explained_variance),
            Check(f"precondition: SAE {sae_name} loss recovered when spliced, {task} puzzles (fidelity v{fidelity.DEFINITION_VERSION})",
                  recovered, spec.min_loss_recovered)]


def ablation_preconditions(subject, p: AblationBreaksOneTask) -> list:
    return competence(subject, p.task)


def splice_preconditions(subject, p: SAESpliceRestores) -> list:
    return competence(subject, p.task)  # and the SAE's fidelity, which the framework applies to the SAE `sae` names


# every culture claim that names an SAE is measured on one task's puzzles (its `task`)
def claim_sae_fidelity(subject, sae_name: str, p) -> list:
    """The fidelity precondition the framework applies to every culture claim naming an SAE: measured
    on the claim's own task's puzzles, so such a claim must say which task it reads."""
    task = getattr(p, "task", None)
    if not isinstance(task, str):
        raise ValueError(f"{type(p).__name__} names SAE {sae_name!r} but has no `task` parameter: culture measures "
                         f"an SAE's fidelity on the claim's task's puzzles")
    return sae_fidelity(subject, sae_name, task)


register_domain(Domain("culture", sae_fidelity=claim_sae_fidelity))


register_claim(Claim("solved_rate", "culture", SolvedRate, measure_solved_rate, judge_solved_rate, version=3,
                     summary="F5: the model solves each task's puzzles (whole answer grid right)"))
register_claim(Claim("ablation_breaks_one_task", "culture", AblationBreaksOneTask, measure_ablation, judge_ablation, version=3,
                     summary="F1: zeroing one hook breaks one task's puzzles, by a margin over every other task's",
                     preconditions=ablation_preconditions, rests_on=("solved_rate",)))
register_claim(Claim("sae_splice_restores", "culture", SAESpliceRestores, measure_splice, judge_splice, version=3,
                     summary="F2: splicing in the SAE's reconstruction restores the puzzles the ablation broke",
                     preconditions=splice_preconditions, rests_on=("solved_rate",)))
