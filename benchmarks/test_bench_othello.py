"""Othello throughput: hooked forward (one hook, stopped early), SAE encoding, a whole claim. Each
FLOP count (verify.flops) is checked against the matmul FLOPs torch counts in the same call, so the
check means something under --benchmark-disable too."""

import dataclasses

import pytest
import torch

from verify.othello import rules as othello
from verify.activations import hook_activations, sae_feature_acts
from verify.othello import findings as f
from verify.flops import executed_flops, forward_flops, sae_encode_flops
from verify.hooks import stop_layer
from tests.conftest import SUBJECTS_DIR
from verify.subjects import load_subject, read_manifest

GAMES = 256  # one batch of hook_activations (its batch_size), so the forward's shapes are known
SAE_BATCH = 8192


@pytest.fixture(scope="module")
def tiny():
    m = read_manifest(SUBJECTS_DIR / "othello-tiny.toml")
    return load_subject(dataclasses.replace(m, data=dataclasses.replace(m.data, size=GAMES)), "cpu")


@pytest.fixture(scope="module")
def tokens(tiny):
    return f.input_tokens(tiny, f.split(tiny, "confirmation"))


def test_forward_one_hook(benchmark, record, tiny, tokens):
    hook, cfg = tiny.manifest.saes["resid"].hook, tiny.model.cfg
    acts = benchmark(hook_activations, tiny.model, tokens, hook)
    assert acts.shape == (GAMES, othello.MODEL_INPUT_LENGTH, cfg.d_model)
    flops = forward_flops(cfg, GAMES, tokens.shape[1], layers=stop_layer(hook), unembed=False)
    assert executed_flops(hook_activations, tiny.model, tokens, hook) == flops
    record(flops, tokens.numel(), matmul_shape=(tokens.numel(), cfg.d_model, cfg.d_mlp), hook=hook)


def test_forward_full_with_logits(benchmark, record, tiny, tokens):
    forward, cfg = torch.inference_mode()(tiny.model), tiny.model.cfg
    logits = benchmark(forward, tokens)
    assert logits.shape == (GAMES, othello.MODEL_INPUT_LENGTH, 61)
    flops = forward_flops(cfg, GAMES, tokens.shape[1])
    assert executed_flops(forward, tokens) == flops
    record(flops, tokens.numel(), matmul_shape=(tokens.numel(), cfg.d_model, cfg.d_mlp))


def test_sae_encode(benchmark, record, tiny, tokens):
    sae = tiny.saes["resid"]
    acts = hook_activations(tiny.model, tokens, tiny.manifest.saes["resid"].hook)
    feats = benchmark(sae_feature_acts, sae, acts, batch_size=SAE_BATCH)
    assert feats.shape[-1] == sae.cfg.d_sae
    flops = sae_encode_flops(sae.cfg.d_in, sae.cfg.d_sae, tokens.numel())
    assert executed_flops(sae_feature_acts, sae, acts, batch_size=SAE_BATCH) == flops
    record(flops, tokens.numel(), matmul_shape=(min(SAE_BATCH, tokens.numel()), sae.cfg.d_in, sae.cfg.d_sae))


def test_whole_feature_claim(benchmark, record, tiny, tokens):
    params = tiny.manifest.claims["feature_tracks_empty_square"]
    def measure_uncached():  # drop cached activations (not the games) so the forwards are timed
        tiny.results.clear()
        return f.measure_feature_emptiness(tiny, params)

    result = benchmark(measure_uncached)
    assert result.correlation.lo <= result.correlation.value <= result.correlation.hi
    cfg, sae = tiny.model.cfg, tiny.saes["resid"]
    layers = stop_layer(tiny.manifest.saes["resid"].hook)
    # 2 hooked forwards (confirmation and selection games), 3 SAE encodes (ours, random on both splits)
    flops = 2 * forward_flops(cfg, GAMES, tokens.shape[1], layers=layers, unembed=False) + 3 * sae_encode_flops(sae.cfg.d_in, sae.cfg.d_sae, tokens.numel())
    assert executed_flops(measure_uncached) == flops  # nothing else in the claim multiplies matrices
    record(flops, 2 * tokens.numel())
