"""Per-puzzle verdicts (every answer cell right) under any hooks, from one teacher-forced pass.

Greedy generation of the answer is right iff the teacher-forced argmax is right at every answer
position (by induction over positions), so one batched forward replaces `cells` generation steps.
`greedy_verdicts` does the slow thing, for tests and the benchmark that compares them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from verify.culture.layout import PuzzleLayout
from verify.interventions import Hook


def check_hooks(model, hooks: Sequence[Hook]) -> None:
    for name, _ in hooks:
        if name not in model.hook_dict:
            raise KeyError(f"the model has no hook point {name!r}")


@torch.inference_mode()
def teacher_forced_verdicts(model, tokens: torch.Tensor, layout: PuzzleLayout, hooks: Sequence[Hook] = (),
                            batch_size: int = 32) -> torch.Tensor:
    """(N,) bool: puzzle solved (argmax right at every answer cell) with `hooks` applied."""
    layout.check(tokens)
    check_hooks(model, hooks)
    tokens = tokens.to(model.cfg.device)
    answer, logit_pos = layout.answer_slice, layout.answer_logits_slice
    out = []
    for i in range(0, len(tokens), batch_size):
        batch = tokens[i : i + batch_size]
        logits = model.run_with_hooks(batch[:, :-1], fwd_hooks=list(hooks))  # the last token predicts nothing
        out.append((logits[:, logit_pos].argmax(-1) == batch[:, answer]).all(-1))
    return torch.cat(out)


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
