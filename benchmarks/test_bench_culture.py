"""Culture throughput: teacher-forced verdicts against greedy generation on the same puzzles, and a
hooked forward. The model is a random culture-architecture model (12 blocks like the real one,
narrower), on the real 405-token layout; half the puzzles carry the model's own greedy answer so
that both verdicts occur."""

import time

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from verify.culture.evaluate import greedy_answers, greedy_verdicts, teacher_forced_verdicts, zero_ablation
from verify.culture.layout import REAL_LAYOUT
from verify.culture.tasks import generate_task
from verify.flops import forward_flops
from verify.loaders.culture_pth import CULTURE_GPT_CONFIG

PUZZLES = 8


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = {**CULTURE_GPT_CONFIG, "d_model": 64, "n_heads": 4, "d_head": 16, "d_mlp": 256}
    return HookedTransformer(HookedTransformerConfig(**cfg, device="cpu")).eval()


@pytest.fixture(scope="module")
def puzzles(model):
    p = generate_task("contact", PUZZLES, 0, REAL_LAYOUT)
    half = PUZZLES // 2
    p[:half, REAL_LAYOUT.answer_slice] = greedy_answers(model, p[:half], REAL_LAYOUT)
    return p


def test_teacher_forced_vs_greedy(benchmark, record, model, puzzles):
    start = time.perf_counter()
    greedy = greedy_verdicts(model, puzzles, REAL_LAYOUT)
    greedy_s = time.perf_counter() - start
    tf = benchmark(teacher_forced_verdicts, model, puzzles, REAL_LAYOUT)
    assert tf.tolist() == greedy.tolist() and 0 < sum(tf.tolist()) < PUZZLES  # equal, and not vacuously
    start = time.perf_counter()
    teacher_forced_verdicts(model, puzzles, REAL_LAYOUT)
    tf_s = time.perf_counter() - start
    record(forward_flops(model.cfg, PUZZLES, REAL_LAYOUT.length - 1), PUZZLES * (REAL_LAYOUT.length - 1),
           greedy_seconds=round(greedy_s, 3), teacher_forced_seconds=round(tf_s, 4),
           speedup_over_greedy=round(greedy_s / tf_s, 1), verdicts_per_s=round(PUZZLES / tf_s, 1))


def test_forward_with_ablation_hook(benchmark, record, model, puzzles):
    hooks = [zero_ablation("blocks.8.hook_mlp_out")]
    verdicts = benchmark(teacher_forced_verdicts, model, puzzles, REAL_LAYOUT, hooks)
    assert verdicts.shape == (PUZZLES,)
    record(forward_flops(model.cfg, PUZZLES, REAL_LAYOUT.length - 1), PUZZLES * (REAL_LAYOUT.length - 1))
