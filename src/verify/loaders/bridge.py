"""A HookedTransformer's weights in TransformerLens' TransformerBridge (the API TransformerLens 3.9
points to for 4.0): `TransformerBridge.boot_native` builds the bridge over TransformerLens' own
native transformer of the same config, and the weights are copied into it in that model's layout
(torch Linear layers: q/k/v/o, mlp in/out, head). The bridge exposes the HookedTransformer hook names
(hook_resid_pre, attn.hook_z, hook_pattern, mlp.hook_post, ...). What it does not do in 3.9:
`start_at_layer` (NotImplementedError: the forward is the wrapped model's own loop)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext

import torch

from verify.loaders.common import ARCHITECTURE_KEYS, CheckpointError

# what boot_native's native model implements; other variants (rotary, RMS, gated MLP, ...) are
# built by its config too, but their weight layouts are not mapped here
SUPPORTED = {"normalization_type": ("LN",), "positional_embedding_type": ("standard",), "attn_only": (False,),
             "gated_mlp": (False,), "act_fn": ("gelu", "relu", "gelu_new")}


def native_state(state: dict[str, torch.Tensor], cfg) -> dict[str, torch.Tensor]:
    """HookedTransformer parameter names and layouts -> the native model's (Linear: out x in)."""
    hd = cfg.n_heads * cfg.d_head
    out = {"tok_embed.weight": state["embed.W_E"], "pos.weight": state["pos_embed.W_pos"],
           "ln_out.weight": state["ln_final.w"], "ln_out.bias": state["ln_final.b"],
           "head.weight": state["unembed.W_U"].T, "head.bias": state["unembed.b_U"]}
    for i in range(cfg.n_layers):
        b, n = f"blocks.{i}", f"layers.{i}"
        for ln in ("ln1", "ln2"):
            out[f"{n}.{ln}.weight"], out[f"{n}.{ln}.bias"] = state[f"{b}.{ln}.w"], state[f"{b}.{ln}.b"]
        for x in "QKV":  # W_x (heads, d_model, d_head) -> (heads * d_head, d_model)
            out[f"{n}.attn.{x.lower()}.weight"] = state[f"{b}.attn.W_{x}"].permute(0, 2, 1).reshape(hd, cfg.d_model)
            out[f"{n}.attn.{x.lower()}.bias"] = state[f"{b}.attn.b_{x}"].reshape(hd)
        out[f"{n}.attn.o.weight"] = state[f"{b}.attn.W_O"].reshape(hd, cfg.d_model).T
        out[f"{n}.attn.o.bias"] = state[f"{b}.attn.b_O"]
        out[f"{n}.mlp.in.weight"], out[f"{n}.mlp.in.bias"] = state[f"{b}.mlp.W_in"].T, state[f"{b}.mlp.b_in"]
        out[f"{n}.mlp.out.weight"], out[f"{n}.mlp.out.bias"] = state[f"{b}.mlp.W_out"].T, state[f"{b}.mlp.b_out"]
    return out


def to_bridge(model):
    """A TransformerBridge computing what `model` (a HookedTransformer) computes, with its weights."""
    from transformer_lens.model_bridge import TransformerBridge

    problem = unsupported(model)
    if problem is not None:
        raise CheckpointError(problem)
    cfg = {k: v for k, v in model.cfg.to_dict().items() if k in ARCHITECTURE_KEYS and v is not None}
    bridge = TransformerBridge.boot_native({**cfg, "init_weights": False})
    native = native_state({k: v.detach().cpu() for k, v in model.state_dict().items()}, model.cfg)
    wrapped = bridge.original_model.state_dict()
    clean = {key: key.replace("._original_component", "").replace("mlp.fc_in", "mlp.in").replace("mlp.fc_out", "mlp.out")
             for key in wrapped}
    bridge.original_model.load_state_dict({key: native[name].to(wrapped[key].dtype) for key, name in clean.items()})
    bridge.hooked_cfg = model.cfg  # what a random baseline of the same architecture is built from
    device = next(model.parameters()).device
    return bridge.to(device).eval().requires_grad_(False)


# TransformerLens 3.9's warning on every HookedTransformer built (its constructor warns, whatever builds it)
DEPRECATION = r"HookedTransformer is deprecated and will be removed in 4\.0"


@contextmanager
def hooked_without_deprecation():
    """Silence exactly TransformerLens' HookedTransformer deprecation warning, for the HookedTransformer
    a bridge subject is built through (its weights loaders and random baselines build one, which
    `to_bridge` then copies): the subject runs on the TransformerBridge the warning asks for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION, category=DeprecationWarning)
        yield


def is_bridge(model) -> bool:
    from transformer_lens.model_bridge import TransformerBridge

    return isinstance(model, TransformerBridge)


def unsupported(model) -> str | None:
    """Why `to_bridge` cannot take this HookedTransformer (None: it can), in one line; `model` may be a
    skeleton on the meta device (the collection check)."""
    found = model.cfg.to_dict()
    odd = next((k for k, allowed in SUPPORTED.items() if found.get(k, allowed[0]) not in allowed), None)
    if odd is not None:
        return (f"{odd} = {found[odd]!r}: TransformerBridge's native model is mapped here only for "
                f"{', '.join(f'{k} in {list(v)}' for k, v in SUPPORTED.items())}")
    if isinstance(getattr(model, "ln_final", None), torch.nn.Identity):  # culture_pth's: the native model always has one
        return "a model without a final LayerNorm: TransformerBridge's native model always applies one"
    return None


def hooked_config(model):
    """The HookedTransformerConfig of `model`: its own, or for a bridge the one `to_bridge` built it from."""
    cfg = getattr(model, "hooked_cfg", None) if is_bridge(model) else model.cfg
    if cfg is None:
        raise ValueError("this TransformerBridge was not built by verify's to_bridge: its HookedTransformer config is unknown")
    return cfg


def building(api: str):
    """Where a subject's HookedTransformer is built: `hooked_without_deprecation` for a manifest's
    `api = "bridge"`; for "hooked" the warning stays, since that subject does run on the deprecated class."""
    return hooked_without_deprecation() if api == "bridge" else nullcontext()
