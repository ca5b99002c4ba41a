"""Othello throughput: hooked forward (one hook, stopped early), SAE encoding, a whole claim."""

import dataclasses

import pytest
import torch

from verify.othello import rules as othello
from verify.activations import hook_activations, sae_feature_acts
from verify.othello import findings as f
from verify.flops import forward_flops, sae_encode_flops
from verify.hooks import stop_layer
from tests.conftest import SUBJECTS_DIR
from verify.subjects import load_subject, read_manifest

GAMES = 256


@pytest.fixture(scope="module")
def tiny():
    m = read_manifest(SUBJECTS_DIR / "othello-tiny.toml")
    return load_subject(dataclasses.replace(m, data=dataclasses.replace(m.data, size=GAMES)), "cpu")


@pytest.fixture(scope="module")
def tokens(tiny):
    return f.input_tokens(tiny, f.split(tiny, "confirmation"))


def test_forward_one_hook(benchmark, record, tiny, tokens):
    hook = tiny.manifest.saes["resid"].hook
    acts = benchmark(hook_activations, tiny.model, tokens, hook)
    assert acts.shape == (GAMES, othello.MODEL_INPUT_LENGTH, tiny.model.cfg.d_model)
    record(forward_flops(tiny.model.cfg, GAMES, tokens.shape[1], layers=stop_layer(hook), unembed=False), tokens.numel(), hook=hook)


def test_forward_full_with_logits(benchmark, record, tiny, tokens):
    logits = benchmark(torch.inference_mode()(tiny.model), tokens)
    assert logits.shape == (GAMES, othello.MODEL_INPUT_LENGTH, 61)
    record(forward_flops(tiny.model.cfg, GAMES, tokens.shape[1]), tokens.numel())


def test_sae_encode(benchmark, record, tiny, tokens):
    sae = tiny.saes["resid"]
    acts = hook_activations(tiny.model, tokens, tiny.manifest.saes["resid"].hook)
    feats = benchmark(sae_feature_acts, sae, acts)
    assert feats.shape[-1] == sae.cfg.d_sae
    record(sae_encode_flops(sae.cfg.d_in, sae.cfg.d_sae, tokens.numel()), tokens.numel())


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
    record(flops, 2 * tokens.numel())
