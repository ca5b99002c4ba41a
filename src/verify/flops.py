"""FLOP counts of what the benchmarks time (multiply-add = 2 FLOPs), so throughput reads as a rate.
Only matmuls are counted (embedding lookups, LayerNorm, activations and softmax are a vanishing share
at these widths); `executed_flops` is torch's own count of the same, to check these formulas against."""

from __future__ import annotations

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")  # torch's profiler computes their FLOPs
CPU_ATTENTION = "aten::_scaled_dot_product_flash_attention_for_cpu"  # its FLOPs it does not: counted from its shapes


def forward_flops(cfg, batch: int, seq_len: int, layers: int | None = None, unembed: bool = True,
                  from_position: int = 0) -> int:
    """Matmul FLOPs of a HookedTransformer forward over `layers` blocks (default all).

    Per token and block: QKV and output projections 2*4*d_model*d_head*n_heads, MLP 2*2*d_model*d_mlp,
    attention scores and mixing 2*2*seq_len*d_head*n_heads (full, unmasked, as the kernels compute it).
    The unembedding adds 2*d_model*d_vocab per token; the embedding is a lookup (no FLOPs). A plain
    (ungated) MLP, as every model here has. With `from_position` p (verify.suffix, every block run),
    the last block projects keys and values at every position and does the rest, the unembedding
    included, at positions p.. only.
    """
    layers = cfg.n_layers if layers is None else layers
    if from_position and layers != cfg.n_layers:
        raise ValueError("from_position: the suffix forward runs every block")
    d_attn = cfg.d_head * cfg.n_heads
    per_token_block = 2 * 4 * cfg.d_model * d_attn + 2 * 2 * cfg.d_model * cfg.d_mlp + 2 * 2 * seq_len * d_attn
    rows = seq_len - from_position  # positions whose logits are computed
    total = batch * seq_len * layers * per_token_block
    if from_position:
        key_value = 2 * 2 * cfg.d_model * d_attn
        total -= batch * (seq_len * per_token_block - seq_len * key_value - rows * (per_token_block - key_value))
    if unembed:
        total += batch * rows * 2 * cfg.d_model * cfg.d_vocab
    return total


def sae_encode_flops(d_in: int, d_sae: int, n_tokens: int) -> int:
    return 2 * d_in * d_sae * n_tokens


def executed_flops(fn, *args, **kwargs) -> int:
    """Matmul FLOPs of the torch ops that `fn(*args, **kwargs)` executes, counted by torch's profiler.
    Not FlopCounterMode: it registers global module hooks, and a registered hook turns verify.fused and
    verify.suffix off, so it would count another forward than the one timed."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        fn(*args, **kwargs)
    return profiled_flops(prof)


def profiled_flops(prof) -> int:
    """Matmul FLOPs of what a finished torch profiler (record_shapes, with_flops) recorded."""
    from torch.utils import flop_counter

    total = 0
    for event in prof.events():
        if event.name in MATMULS:
            total += event.flops
        elif event.name == CPU_ATTENTION:  # full, unmasked attention, as `forward_flops` counts it
            total += flop_counter.sdpa_flop_count(*event.input_shapes[:3])
    return int(total)
