"""FLOP counts of what the benchmarks time (multiply-add = 2 FLOPs), so throughput reads as a rate.
Only matmuls are counted (embedding lookups, LayerNorm, activations and softmax are a vanishing share
at these widths); `executed_flops` is torch's own count of the same, to check these formulas against."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(cfg, batch: int, seq_len: int, layers: int | None = None, unembed: bool = True) -> int:
    """Matmul FLOPs of a HookedTransformer forward over `layers` blocks (default all).

    Per token and block: QKV and output projections 2*4*d_model*d_head*n_heads, MLP 2*2*d_model*d_mlp,
    attention scores and mixing 2*2*seq_len*d_head*n_heads (full, unmasked, as the kernels compute it).
    The unembedding adds 2*d_model*d_vocab per token; the embedding is a lookup (no FLOPs). A plain
    (ungated) MLP, as every model here has.
    """
    layers = cfg.n_layers if layers is None else layers
    d_attn = cfg.d_head * cfg.n_heads
    per_token_block = 2 * 4 * cfg.d_model * d_attn + 2 * 2 * cfg.d_model * cfg.d_mlp + 2 * 2 * seq_len * d_attn
    total = batch * seq_len * layers * per_token_block
    if unembed:
        total += batch * seq_len * 2 * cfg.d_model * cfg.d_vocab
    return total


def sae_encode_flops(d_in: int, d_sae: int, n_tokens: int) -> int:
    return 2 * d_in * d_sae * n_tokens


def executed_flops(fn, *args, **kwargs) -> int:
    """Matmul FLOPs of the torch ops that `fn(*args, **kwargs)` executes, counted by torch."""
    count_cpu_attention()
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def count_cpu_attention() -> None:
    """torch's FlopCounterMode counts its CUDA attention kernels but not the CPU kernel that
    `F.scaled_dot_product_attention` runs (verify.fused's attention): the same formula, registered for
    it (full, unmasked attention, as `forward_flops` counts TransformerLens' matmuls)."""
    from torch.utils import flop_counter

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if op not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(op)(
            lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(q, k, v))
