"""A fused forward for TransformerLens attention and LayerNorm, taken only where no hook needs the slow one.

TransformerLens computes attention head by head in plain torch ops (einsum reshapes, a causal `where`
over the full score matrix, a softmax, hook points between each step) and LayerNorm by hand, so every
intermediate exists for a hook to read or change. A verifier mostly reads the residual stream, MLP and
attention outputs, which are computed in the block, outside attention and LayerNorm. `install` gives each
eligible attention module a forward that projects q, k and v with one `F.linear` each, runs
`F.scaled_dot_product_attention(is_causal=True)` and projects out with `F.linear`, and each LayerNorm
`F.layer_norm`. At each call the fused code runs only when:

- no hook is registered on any hook point inside the module (hook_q/k/v, hook_attn_scores, hook_pattern,
  hook_z, hook_result, hook_rot_q/k; LayerNorm's hook_scale, hook_normalized) and no global module hook
  exists: `run_with_cache` or `run_with_hooks` on any of them runs TransformerLens' own code for that
  module, so what a hook sees or changes is exactly what it is without this module;
- the call uses nothing the fused code does not implement (a kv cache, attention masks, position bias,
  per-head inputs, half precision, the use_attn_result / split-qkv / attn_in switches TransformerLens can
  turn on after loading);
- its output is finite (TransformerLens turns a NaN attention row into zeros; a non-finite result is
  recomputed by TransformerLens' code, so those semantics hold too).

Which modules are eligible is decided at install from the config (`attention_refusal`, `norm_refusal`):
standard or shortformer positions, causal, global attention, float32/float64, none of rotary, alibi,
relative bias, grouped-query heads, soft-caps, QK norms, clipping, attention sinks, log-n scaling,
scale_attn_by_inverse_layer_idx or 4-bit weights. The results agree with TransformerLens' to float
rounding (tests/test_fused.py states the tolerance and checks it on every embedded subject).

`VERIFY_FUSED=off` (or pytest's `--claims-fused=off`) loads subjects without it.
"""

from __future__ import annotations

import os
import types

import torch
import torch.nn.functional as F

ENV = "VERIFY_FUSED"
CHOICES = {"on": True, "1": True, "off": False, "0": False}
FUSED_ATTR = "_verify_fused"  # set on a module whose forward `install` replaced


def wanted(choice: str | None = None) -> bool:
    """Whether to fuse: `choice` ("on"/"off", pytest's --claims-fused) if given, else $VERIFY_FUSED, else on."""
    given, where = (choice, "--claims-fused") if choice is not None else (os.environ.get(ENV), ENV)
    if given is None or given == "":
        return True
    if given.lower() not in CHOICES:
        raise ValueError(f"{where}={given!r}: expected one of {', '.join(CHOICES)}")
    return CHOICES[given.lower()]


def attention_refusal(module) -> str | None:
    """Why this attention module cannot take the fused path (None: it can), from its class and config."""
    from transformer_lens.components import Attention
    from transformer_lens.utilities.activation_functions import softcap_enabled

    cfg = module.cfg
    checks = (
        (type(module) is not Attention, f"{type(module).__name__} is not TransformerLens' plain Attention"),
        (cfg.dtype not in (torch.float32, torch.float64), f"dtype {cfg.dtype}"),
        (cfg.positional_embedding_type not in ("standard", "shortformer"), f"{cfg.positional_embedding_type} positions"),
        (cfg.attention_dir != "causal", f"{cfg.attention_dir} attention"),
        (module.attn_type != "global", f"{module.attn_type} attention"),
        (bool(cfg.load_in_4bit), "4-bit weights"),
        (cfg.n_key_value_heads not in (None, cfg.n_heads), "grouped-query heads"),
        (softcap_enabled(cfg.attn_scores_soft_cap), "an attention soft-cap"),
        (bool(cfg.use_qk_norm) or module.q_norm is not None or module.k_norm is not None, "QK norms"),
        (cfg.clip_qkv is not None, "clipped q/k/v"),
        (bool(cfg.use_attention_sinks), "attention sinks"),
        (bool(cfg.use_logn_attn), "log-n attention scaling"),
        (bool(cfg.scale_attn_by_inverse_layer_idx), "scale_attn_by_inverse_layer_idx"),
    )
    return next((why for refused, why in checks if refused), None)


def norm_refusal(module) -> str | None:
    """Why this normalisation module cannot take the fused path (None: it can)."""
    from transformer_lens.components import LayerNorm, LayerNormPre

    if type(module) not in (LayerNorm, LayerNormPre):
        return f"{type(module).__name__} is not TransformerLens' LayerNorm or LayerNormPre"
    if module.cfg.dtype not in (torch.float32, torch.float64):
        return f"dtype {module.cfg.dtype}"
    return None


def install(model) -> list[str]:
    """Give every eligible attention and LayerNorm module of `model` (a HookedTransformer) the fused
    forward; returns the names of the modules that got it. Installing twice changes nothing."""
    from transformer_lens.components import AbstractAttention

    fused = []
    for name, module in model.named_modules():
        if isinstance(module, AbstractAttention):
            refusal, forward = attention_refusal(module), _attention_forward
        elif hasattr(module, "hook_scale") and hasattr(module, "hook_normalized"):
            refusal, forward = norm_refusal(module), _layer_norm_forward
        else:
            continue
        if refusal is None:
            if not getattr(module, FUSED_ATTR, False):
                module.forward = types.MethodType(forward, module)  # an instance attribute: deepcopy rebinds it
                setattr(module, FUSED_ATTR, True)
            fused.append(name)
    return fused


def fused_modules(model) -> list[str]:
    """The names of the modules of `model` that have the fused forward."""
    return [name for name, module in model.named_modules() if getattr(module, FUSED_ATTR, False)]


def _hooked(module) -> bool:
    """Whether a hook is registered on any submodule of `module` (its hook points), or on every module."""
    from torch.nn.modules import module as torch_module

    if (torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks
            or torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks):
        return True
    return any(sub._forward_hooks or sub._forward_pre_hooks or sub._backward_hooks or sub._backward_pre_hooks
               for sub in module._modules.values() if sub is not None)


def _attention_forward(self, query_input, key_input, value_input, past_kv_cache_entry=None,
                       additive_attention_mask=None, attention_mask=None, position_bias=None):
    cfg = self.cfg
    if (past_kv_cache_entry is not None or additive_attention_mask is not None or attention_mask is not None
            or position_bias is not None or query_input.dim() != 3 or key_input.dim() != 3 or value_input.dim() != 3
            or query_input.dtype not in (torch.float32, torch.float64)
            or cfg.use_attn_result or cfg.use_split_qkv_input or cfg.use_attn_in
            or getattr(self, "_attention_dir_override", None) is not None or _hooked(self)):
        return type(self).forward(self, query_input, key_input, value_input, past_kv_cache_entry,
                                  additive_attention_mask, attention_mask, position_bias)
    out = _attend(self, query_input, key_input, value_input, mask=None)
    if out is None:
        return type(self).forward(self, query_input, key_input, value_input)
    return out


def attention_from(module, normed: torch.Tensor, first: int) -> torch.Tensor | None:
    """The output of fused attention `module` at positions `first`.. of `normed` (its LayerNorm-ed input,
    read at every position for keys and values), the causal mask aligned to the last position (query
    `first + i` sees keys 0..first + i): the rows `first`.. of its whole output. None where not finite."""
    from torch.nn.attention.bias import causal_lower_right

    mask = causal_lower_right(normed.shape[1] - first, normed.shape[1]) if first else None
    return _attend(module, normed[:, first:], normed, normed, mask)


def _attend(self, query_input, key_input, value_input, mask):
    """q, k, v projected by one `F.linear` each, `F.scaled_dot_product_attention` (causal, or `mask`),
    the output by `F.linear`; None where the result is not finite."""
    heads, d_head = self.cfg.n_heads, self.cfg.d_head

    def project(x, w, b):  # (batch, pos, d_model) -> (batch, heads, pos, d_head)
        out = F.linear(x, w.transpose(1, 2).reshape(heads * d_head, -1), b.reshape(heads * d_head))
        return out.view(x.shape[0], x.shape[1], heads, d_head).transpose(1, 2)

    q = project(query_input, self.W_Q, self.b_Q)
    k = project(key_input, self.W_K, self.b_K)
    v = project(value_input, self.W_V, self.b_V)
    z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=1.0 / float(self.attn_scale))
    z = z.transpose(1, 2).reshape(query_input.shape[0], query_input.shape[1], heads * d_head)
    out = F.linear(z, self.W_O.reshape(heads * d_head, -1).T, self.b_O)
    if not torch.isfinite(out.sum()):  # one pass; NaN or inf anywhere (or an overflowing sum) makes it non-finite
        return None
    return out


def _layer_norm_forward(self, x):
    if x.dtype != self.cfg.dtype or _hooked(self):
        return type(self).forward(self, x)
    weight, bias = (self.w, self.b) if hasattr(self, "w") else (None, None)  # LayerNormPre has neither
    out = F.layer_norm(x, x.shape[-1:], weight, bias, self.eps)
    if not torch.isfinite(out.sum()):
        return type(self).forward(self, x)
    return out
