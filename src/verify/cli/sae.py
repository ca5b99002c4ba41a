"""Train an sae_lens SAE (standard, L1, by default; or TopK) on one hook of a model, from
activations cached once.

sae_lens' model-driven runner re-runs the model for every buffer; caching the hook's activations
once and feeding them to sae_lens' own SAETrainer is an order of magnitude faster here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from verify.activations import hook_activations


def shuffled_batches(acts: torch.Tensor, batch_size: int, seed: int):
    """Endless iterator over shuffled (batch_size, d_in) rows of `acts`, reproducible from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(acts), generator=gen).to(acts.device)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield acts[order[i : i + batch_size]]


def train_sae(model, tokens: torch.Tensor, hook: str, out: Path, *, d_sae: int, l1_coefficient: float | None = None,
              training_tokens: int, batch_size: int = 1024, lr: float = 1e-3, seed: int = 0, device: str = "cpu",
              architecture: str = "standard", k: int | None = None, b_dec_init: str | None = None,
              dead_feature_window: int = 1000) -> dict:
    """Train, save as an sae_lens folder (cfg.json + sae_weights.safetensors) and return a summary.

    architecture "standard" (ReLU, L1 penalty `l1_coefficient`) or "topk" (the `k` largest
    pre-activations per token, sae_lens' auxiliary loss reviving features silent for
    `dead_feature_window` steps). `b_dec_init = "mean"` starts the decoder bias (subtracted from the
    input) at the activations' mean instead of zero, the b_dec_init_method = "mean" of older sae_lens
    runners."""
    from sae_lens import LoggingConfig, SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    if architecture == "standard" and l1_coefficient is None:
        raise ValueError("a standard SAE needs l1_coefficient")
    if architecture == "topk" and k is None:
        raise ValueError("a topk SAE needs k")
    if architecture not in ("standard", "topk") or b_dec_init not in (None, "mean"):
        raise ValueError(f"architecture must be standard or topk (got {architecture!r}), b_dec_init None or 'mean' (got {b_dec_init!r})")
    print(f"caching {hook} for {tokens.numel()} tokens ...", file=sys.stderr, flush=True)
    acts = hook_activations(model, tokens.to(device), hook).reshape(-1, model.cfg.d_model).float().clone()
    torch.manual_seed(seed)
    if architecture == "standard":
        sae = StandardTrainingSAE(
            StandardTrainingSAEConfig(d_in=acts.shape[-1], d_sae=d_sae, l1_coefficient=l1_coefficient,
                                      apply_b_dec_to_input=True, device=device, l1_warm_up_steps=200)
        )
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=acts.shape[-1], d_sae=d_sae, k=k, apply_b_dec_to_input=True, device=device))
    if b_dec_init == "mean":
        with torch.no_grad():
            sae.b_dec.copy_(acts.mean(0))
    sae.cfg.metadata.hook_name = hook
    sae.cfg.metadata.model_name = getattr(model.cfg, "model_name", "")
    trainer_cfg = SAETrainerConfig(
        total_training_samples=training_tokens, train_batch_size_samples=batch_size, lr=lr, lr_end=lr / 10,
        lr_scheduler_name="cosineannealing", lr_warm_up_steps=100, lr_decay_steps=training_tokens // batch_size // 2,
        device=device, logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0, checkpoint_path=None,
        dead_feature_window=dead_feature_window, feature_sampling_window=1000,
    )
    with torch.enable_grad():
        trained = SAETrainer(trainer_cfg, sae, shuffled_batches(acts, batch_size, seed)).fit()
    out.mkdir(parents=True, exist_ok=True)
    trained.save_inference_model(str(out))
    return summarize(trained, acts)


@torch.inference_mode()
def summarize(sae, acts: torch.Tensor) -> dict:
    """L0, explained variance (1 - SSE / total SS about the mean) and dead fraction on `acts`."""
    feats = sae.encode(acts)
    recon = sae.decode(feats)
    resid = (acts - recon).pow(2).sum()
    total = (acts - acts.mean(0)).pow(2).sum()
    return {
        "l0": round(float((feats > 0).float().sum(-1).mean()), 3),
        "explained_variance": round(float(1 - resid / total), 4),
        "explained_variance_definition": "1 - sum((x - x_hat)^2) / sum((x - mean x)^2) over tokens",
        "dead_fraction": round(float(((feats > 0).sum(0) == 0).float().mean()), 4),
    }
