"""Per-puzzle verdicts (every answer cell right) under any hooks, from one teacher-forced pass.

Greedy generation of the answer is right iff the teacher-forced argmax is right at every answer
position (by induction over positions), so one batched forward replaces `cells` generation steps.
`greedy_verdicts` does the slow thing, for tests and the benchmark that compares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from verify import timing
from verify.culture.layout import PuzzleLayout
from verify.hooks import hook_layer
from verify.interventions import Hook
from verify.suffix import suffix_logits


def check_hooks(model, hooks: Sequence[Hook]) -> None:
    for name, _ in hooks:
        if name not in model.hook_dict:
            raise KeyError(f"the model has no hook point {name!r}")


@dataclass(frozen=True)
class Residual:
    """The residual stream entering block `layer` of a clean forward over some puzzles: a hooked
    forward whose hooks all lie in that block or later starts from it and runs only those blocks."""

    layer: int
    stream: torch.Tensor  # (puzzles, length - 1, d_model)


@timing.stage("forward")
@torch.inference_mode()
def teacher_forced_verdicts(model, tokens: torch.Tensor, layout: PuzzleLayout, hooks: Sequence[Hook] = (),
                            batch_size: int = 32, start: Residual | None = None) -> torch.Tensor:
    """(N,) bool: puzzle solved (argmax right at every answer cell) with `hooks` applied; from the
    clean residual stream `start` of these puzzles, when given."""
    layout.check(tokens)
    check_hooks(model, hooks)
    if start is not None:
        early = [name for name, _ in hooks if (hook_layer(name) or 0) < start.layer]
        if early:
            raise ValueError(f"hook {early[0]!r} lies before block {start.layer}, where the forward starts")
    tokens = tokens.to(model.cfg.device)
    first = layout.answer_logits_slice.start
    out = []
    for i in timing.steps(range(0, len(tokens), batch_size)):
        batch = tokens[i : i + batch_size]
        if start is None:  # the last token predicts nothing
            logits = suffix_logits(model, batch[:, :-1], first, hooks)
        else:
            logits = suffix_logits(model, start.stream[i : i + batch_size], first, hooks, start.layer)
        out.append(solved(logits, batch, layout))
    return torch.cat(out)


@timing.stage("forward")
@torch.inference_mode()
def clean_verdicts_and_residual(model, tokens: torch.Tensor, layout: PuzzleLayout, layer: int,
                                batch_size: int = 32) -> tuple[torch.Tensor, Residual]:
    """`teacher_forced_verdicts` without hooks, and the residual stream entering block `layer` on
    the way: the same blocks run on the same batches, so the verdicts are those of one forward."""
    layout.check(tokens)
    tokens = tokens.to(model.cfg.device)
    out, streams = [], []
    for i in timing.steps(range(0, len(tokens), batch_size)):
        batch = tokens[i : i + batch_size]
        streams.append(model(batch[:, :-1], stop_at_layer=layer))
        out.append(solved(suffix_logits(model, streams[-1], layout.answer_logits_slice.start, (), layer), batch, layout))
    return torch.cat(out), Residual(layer, torch.cat(streams))


def solved(logits: torch.Tensor, batch: torch.Tensor, layout: PuzzleLayout) -> torch.Tensor:
    """(batch,) bool: the argmax is right at every answer cell, from the logits at the positions from
    the first that predicts one (verify.suffix: the last block runs only there)."""
    return (logits[:, : layout.cells].argmax(-1) == batch[:, layout.answer_slice]).all(-1)


@torch.inference_mode()
def greedy_answers(model, tokens: torch.Tensor, layout: PuzzleLayout, hooks: Sequence[Hook] = ()) -> torch.Tensor:
    """(N, cells): the answer grid generated greedily, one cell at a time, from each puzzle's prompt."""
    layout.check(tokens)
    check_hooks(model, hooks)
    seq = tokens[:, : layout.answer_slice.start].to(model.cfg.device)
    for _ in range(layout.cells):
        logits = model.run_with_hooks(seq, fwd_hooks=list(hooks))
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return seq[:, layout.answer_slice]


def greedy_verdicts(model, tokens: torch.Tensor, layout: PuzzleLayout, hooks: Sequence[Hook] = ()) -> torch.Tensor:
    """(N,) bool: greedy autoregressive generation of the answer grid reproduces it exactly."""
    answers = greedy_answers(model, tokens, layout, hooks)
    return (answers == tokens[:, layout.answer_slice].to(answers.device)).all(-1)
