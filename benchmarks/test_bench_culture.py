"""Culture throughput: teacher-forced verdicts against greedy generation on the same puzzles, and a
hooked forward, on two models: a random model of the real architecture (12 blocks, narrower; with the
fused forward load_subject installs) on the real 405-token layout, and the trained embedded subject
culture-tiny on its 6x6 layout. Both verdicts occur: half the puzzles carry the model's own greedy
answer (judged solved); the others keep the random model's (wrong) answer, or carry culture-tiny's
answer with its first cell changed."""

import time
from dataclasses import dataclass

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tests.conftest import session_subject
from verify.culture.evaluate import greedy_answers, greedy_verdicts, teacher_forced_verdicts
from verify.interventions import zero_ablation
from verify.culture.layout import REAL_LAYOUT, PuzzleLayout
from verify.culture.tasks import generate_task
from verify import fused, suffix
from verify.flops import executed_flops, forward_flops
from verify.loaders.culture_pth import CULTURE_GPT_CONFIG

PUZZLES = 8  # below teacher_forced_verdicts' batch_size: one forward over all puzzles
# run once as a test (--benchmark-disable): one solved and one unsolved puzzle still test that both
# verdicts agree, and greedy generation on the 405-token layout costs minutes at 8
PUZZLES_AS_TEST = 2


@dataclass
class Case:
    model: HookedTransformer
    layout: PuzzleLayout
    puzzles: torch.Tensor
    hook: str


def random_real_architecture(n: int) -> Case:
    torch.manual_seed(0)
    cfg = {**CULTURE_GPT_CONFIG, "d_model": 64, "n_heads": 4, "d_head": 16, "d_mlp": 256}
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu")).eval()
    # what load_subject gives every loader's model: the fused forward, the suffix forward's condition
    assert len(fused.install(model)) == 3 * cfg["n_layers"] + 1  # every attention and LayerNorm (ln1, ln2, ln_final)
    puzzles = generate_task("contact", n, 0, REAL_LAYOUT)
    half = n // 2
    puzzles[:half, REAL_LAYOUT.answer_slice] = greedy_answers(model, puzzles[:half], REAL_LAYOUT)
    return Case(model, REAL_LAYOUT, puzzles, "blocks.8.hook_mlp_out")


def culture_tiny(config, n: int) -> Case:
    subject = session_subject(config, "culture-tiny")
    d = subject.manifest.data
    layout = PuzzleLayout(d.options.grid_height, d.options.grid_width)
    puzzles = generate_task("contact", n, d.confirmation_seed, layout)
    answers = greedy_answers(subject.model, puzzles, layout)
    puzzles[:, layout.answer_slice] = answers
    puzzles[n // 2 :, layout.answer_slice.start] = (answers[n // 2 :, 0] + 1) % 11
    return Case(subject.model, layout, puzzles, subject.manifest.claims["ablation_breaks_one_task"].hook)


@pytest.fixture(scope="module", params=["random-real-architecture", "culture-tiny"])
def case(request) -> Case:
    n = PUZZLES_AS_TEST if request.config.getoption("benchmark_disable") else PUZZLES
    if request.param == "culture-tiny":
        return culture_tiny(request.config, n)
    return random_real_architecture(n)


def mlp_in_shape(case: Case) -> tuple[int, int, int]:
    """The forward's MLP-in matmul: every position of every puzzle against W_in."""
    return len(case.puzzles) * (case.layout.length - 1), case.model.cfg.d_model, case.model.cfg.d_mlp


def verdict_flops(case: Case, hooks=()) -> int:
    """What teacher_forced_verdicts executes: the last block from the first answer prediction on where
    verify.suffix runs (a fused model, hooks it allows), else the whole forward."""
    first = case.layout.answer_logits_slice.start if suffix.refusal(case.model, hooks) is None else 0
    return forward_flops(case.model.cfg, len(case.puzzles), case.layout.length - 1, from_position=first)


def test_teacher_forced_vs_greedy(benchmark, record, case):
    model, layout, puzzles = case.model, case.layout, case.puzzles
    n = len(puzzles)
    start = time.perf_counter()
    greedy = greedy_verdicts(model, puzzles, layout)
    greedy_s = time.perf_counter() - start
    tf = benchmark(teacher_forced_verdicts, model, puzzles, layout)
    assert tf.tolist() == greedy.tolist() and 0 < sum(tf.tolist()) < n  # equal, and not vacuously
    start = time.perf_counter()
    teacher_forced_verdicts(model, puzzles, layout)
    tf_s = time.perf_counter() - start
    flops = verdict_flops(case)
    assert executed_flops(teacher_forced_verdicts, model, puzzles, layout) == flops
    record(flops, n * (layout.length - 1), matmul_shape=mlp_in_shape(case), greedy_seconds=round(greedy_s, 3),
           teacher_forced_seconds=round(tf_s, 4), speedup_over_greedy=round(greedy_s / tf_s, 1), verdicts_per_s=round(n / tf_s, 1))


def test_forward_with_ablation_hook(benchmark, record, case):
    verdicts = benchmark(teacher_forced_verdicts, case.model, case.puzzles, case.layout, [zero_ablation(case.hook)])
    n = len(case.puzzles)
    assert verdicts.shape == (n,)
    flops = verdict_flops(case, [zero_ablation(case.hook)])
    assert executed_flops(teacher_forced_verdicts, case.model, case.puzzles, case.layout, [zero_ablation(case.hook)]) == flops
    record(flops, n * (case.layout.length - 1), matmul_shape=mlp_in_shape(case))
