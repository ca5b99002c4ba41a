"""The fused forward (verify.fused) against TransformerLens' own on the embedded subjects' shapes:
culture-tiny (148 positions) and othello-tiny (59), a batch of 64 full-length sequences. Both paths are
credited the same FLOPs (forward_flops: full, unmasked attention), so their fractions of the same-shape
matmul compare directly; torch's own count of each call is checked against it."""

import copy

import pytest
import torch

from tests.conftest import SUBJECTS_DIR
from verify import fused
from verify.flops import executed_flops, forward_flops
from verify.subjects import load_subject, read_manifest

BATCH = 64


@pytest.fixture(scope="module", params=["culture-tiny", "othello-tiny"])
def models(request):
    """{path: model} for one subject: TransformerLens' forward and the fused one, and the subject's inputs' shape."""
    plain = load_subject(read_manifest(SUBJECTS_DIR / f"{request.param}.toml"), "cpu", fused_forward=False).model
    fast = copy.deepcopy(plain)
    assert fused.install(fast)
    return {"transformer_lens": plain, "fused": fast}


@pytest.mark.parametrize("path", ["transformer_lens", "fused"])
def test_forward_fused_or_not(benchmark, record, models, path):
    model = models[path]
    cfg = model.cfg
    tokens = torch.randint(0, cfg.d_vocab, (BATCH, cfg.n_ctx), generator=torch.Generator().manual_seed(0))
    forward = torch.inference_mode()(model)
    logits = benchmark(forward, tokens)
    assert logits.shape == (BATCH, cfg.n_ctx, cfg.d_vocab_out)
    flops = forward_flops(cfg, BATCH, cfg.n_ctx)
    assert executed_flops(forward, tokens) == flops
    record(flops, tokens.numel(), matmul_shape=(tokens.numel(), cfg.d_model, cfg.d_mlp), path=path)
