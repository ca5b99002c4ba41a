"""Reading checkpoint files with errors that name the file and what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as its manifest says: one line (a newline in a value
    read from the file is shown escaped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


def regular_file(path: Path) -> Path:
    """path, when it is a regular file; a FIFO, device or folder is refused before it is opened."""
    from verify import sources

    try:
        return sources.check_regular_file(path)
    except ValueError as err:
        raise CheckpointError(str(err)) from None


# a config is a few kilobytes; a larger "config" is not one, and is not read whole into memory
MAX_CONFIG_BYTES = 1 << 20


def read_json(path: Path) -> dict:
    """A JSON object from a config file (a regular file of at most MAX_CONFIG_BYTES)."""
    regular_file(path)
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes: not a config file")
        cfg = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read as JSON: {err}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to read as JSON (maximum recursion depth exceeded)") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(cfg).__name__}")
    return cfg


def check_finite(tensors: dict[str, torch.Tensor], path: Path, buffers: frozenset[str] = frozenset()) -> None:
    """No NaN or infinity in a weight; `buffers` (TransformerLens' masks: IGNORE is -inf by design) are not weights."""
    for name, tensor in tensors.items():
        if name in buffers:
            continue
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name!r} contains NaN or infinite values")


def read_safetensors(path: Path, buffers: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """The file's tensors, every one but the named `buffers` finite."""
    from safetensors.torch import load_file

    regular_file(path)
    try:
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{path}: not a readable safetensors file ({err}); truncated or corrupt?") from None
    check_finite(tensors, path, buffers)
    return tensors


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # "Unsupported global: GLOBAL x.y", "unsupported GLOBAL x.y whose module ..."


def torch_load_problem(err: Exception) -> str:
    """torch's refusal in one line: the pickle global it refused, by name, when it names one."""
    text = _ANSI.sub("", str(err))
    found = _GLOBAL.search(text)
    if found:
        return f"it needs the pickle global {found.group(1)}, which a weights-only load refuses (it could run code)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0] if lines else type(err).__name__


def read_torch(path: Path, mmap: bool = False):
    """torch.load with weights_only=True: tensors and plain containers only, never arbitrary code."""
    import pickle

    regular_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: refused or unreadable as a weights-only torch file: {torch_load_problem(err)}") from None


# A model config is data. These HookedTransformerConfig fields describe the architecture (sizes,
# activation, normalisation, attention and positional variants, which hook points exist) or only the
# initialisation that the weights file replaces (seed, init_*); nothing else is passed on.
ARCHITECTURE_KEYS = frozenset({
    "d_model", "d_head", "n_layers", "n_ctx", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "n_key_value_heads",
    "act_fn", "normalization_type", "positional_embedding_type", "eps", "attn_only", "gated_mlp", "uses_rms_norm",
    "final_rms", "post_embedding_ln", "parallel_attn_mlp", "tie_word_embeddings", "use_normalization_before_and_after",
    "use_attn_scale", "attn_scale", "attn_scores_soft_cap", "output_logits_soft_cap", "use_qk_norm", "clip_qkv",
    "use_logn_attn", "use_local_attn", "window_size", "attn_types", "attention_dir", "scale_attn_by_inverse_layer_idx",
    "ungroup_grouped_query_attention", "relative_attention_max_distance", "relative_attention_num_buckets",
    "rotary_dim", "rotary_base", "rotary_base_local", "rotary_scaling_factor", "rotary_adjacent_pairs",
    "use_dynamic_ntk_rope", "train_seq_length", "use_NTK_by_parts_rope", "NTK_by_parts_low_freq_factor",
    "NTK_by_parts_high_freq_factor", "NTK_by_parts_factor", "NTK_original_ctx_len", "use_yarn_rope", "yarn_factor",
    "yarn_attention_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_original_max_position_embeddings",
    "yarn_truncate", "yarn_global_attn_only", "use_attention_sinks", "num_experts", "experts_per_token",
    "norm_topk_prob", "layer_norm_folding", "default_prepend_bos", "use_attn_result", "use_split_qkv_input",
    "use_hook_mlp_in", "use_attn_in", "use_hook_tokens", "model_name", "seed", "init_mode", "initializer_range",
    "init_weights", "original_architecture",  # a name TransformerLens' attention branches on (OLMo's QK norms)
})
# what HookedTransformerConfig computes itself and `cfg.to_dict()` writes out (TransformerLens' own
# dump of a config): read, not passed on, so such a file loads as it was saved
DERIVED_KEYS = frozenset({"n_params", "tokenizer_prepends_bos", "decoder_start_token_id"})
# fields that make transformer_lens fetch, import or run something, or that the verifier decides itself
_DOWNLOAD = "it describes a pretrained download, not an architecture"
_QUANTIZE = "it makes transformer_lens import a quantization library"
REFUSED_KEYS = {
    "tokenizer_name": "transformer_lens would load a tokenizer by this name from the hub or a folder, whose code "
                      "can run (the verifier feeds token ids and needs none)",
    "trust_remote_code": "it lets a tokenizer's or model's own Python code run",
    "from_checkpoint": _DOWNLOAD, "checkpoint_index": _DOWNLOAD, "checkpoint_label_type": _DOWNLOAD, "checkpoint_value": _DOWNLOAD,
    "load_in_4bit": _QUANTIZE, "quantization_method": _QUANTIZE,
    "device": "the verifier chooses the device (--device)", "n_devices": "the verifier chooses the device (--device)",
    "dtype": "the weights file decides the dtype",
}
# values of refused keys that ask for nothing (TransformerLens' defaults, as `cfg.to_dict()` writes
# them): such a key is dropped, not refused
INERT_VALUES = {"tokenizer_name": (None,), "trust_remote_code": (False,), "from_checkpoint": (False,),
                "checkpoint_index": (None,), "checkpoint_label_type": (None,), "checkpoint_value": (None,),
                "load_in_4bit": (False,), "quantization_method": (None,), "device": ("cpu",), "n_devices": (1,),
                "dtype": ("torch.float32", "float32")}
# sizes a skeleton is built for at collection: more layers take minutes to build even on the meta
# device, and each layer's causal mask is n_ctx x n_ctx
MAX_LAYERS = 256
MAX_CTX = 8192
_PATHLIKE = re.compile(r"[/\\:]|^[.~]")


def hooked_transformer_config(config_path: Path) -> dict:
    """The HookedTransformerConfig arguments stored beside safetensors weights, read as data: only
    ARCHITECTURE_KEYS, no value that names a path or URL, sizes within bounds."""
    cfg = read_json(config_path)
    cfg = {k: v for k, v in cfg.items() if k not in DERIVED_KEYS and not (k in INERT_VALUES and _inert(k, v))}
    for key, value in cfg.items():
        if key in REFUSED_KEYS:
            raise CheckpointError(f"{config_path}: key {key!r} is refused: {REFUSED_KEYS[key]}")
        if key not in ARCHITECTURE_KEYS:
            raise CheckpointError(f"{config_path}: key {key!r} is not an architecture field this loader accepts "
                                  "(README, 'Loaders': configs are data)")
        strings = value if isinstance(value, list) else [value]
        odd = next((v for v in strings if isinstance(v, str) and _PATHLIKE.search(v)), None)
        if odd is not None:
            raise CheckpointError(f"{config_path}: {key}: {odd!r} looks like a path or URL; a config's values are names and numbers")
    needed = ("n_layers", "d_model", "d_head", "n_heads", "d_vocab", "n_ctx") + (() if cfg.get("attn_only") else ("d_mlp",))
    missing = [k for k in needed if k not in cfg]  # an attention-only model has no MLP width
    if missing:
        raise CheckpointError(f"{config_path}: missing architecture keys {missing}")
    for key, bound in (("n_layers", MAX_LAYERS), ("n_ctx", MAX_CTX)):
        if not (isinstance(cfg[key], int) and not isinstance(cfg[key], bool) and 1 <= cfg[key] <= bound):
            raise CheckpointError(f"{config_path}: {key}: {cfg[key]!r} must be an integer in [1, {bound}]")
    return cfg


def _inert(key: str, value) -> bool:
    return any(type(value) is type(inert) and value == inert for inert in INERT_VALUES[key])  # False, not 0


def buffer_names(model: torch.nn.Module) -> frozenset[str]:
    """The buffers a TransformerLens model builds itself from its config (causal masks, IGNORE, rotary tables)."""
    return frozenset(name for name, _ in model.named_buffers())


def meta_model(cfg: dict):
    """A HookedTransformer of this architecture on torch's meta device: its hook points and shapes,
    without allocating or reading any weights."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    if not 1 <= cfg.get("n_layers", 1) <= MAX_LAYERS:  # also for architectures read off tensor names
        raise CheckpointError(f"not a valid HookedTransformer config: n_layers {cfg['n_layers']} is outside [1, {MAX_LAYERS}]")
    try:
        with torch.device("meta"):
            return HookedTransformer(HookedTransformerConfig(**{**cfg, "device": "meta"}))
    except Exception as err:  # noqa: BLE001 - transformer_lens raises many types for a config it cannot build
        raise CheckpointError(f"not a valid HookedTransformer config: {type(err).__name__}: {err}") from None


def check_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """state with the model's own buffers added, once every weight it needs is there in its shape;
    `model` may be a skeleton on the meta device (checked before memory is allocated for it)."""
    expected = model.state_dict()
    buffers = buffer_names(model)  # masks etc. that the model builds itself
    for name in buffers & set(state):  # a saved state_dict() carries them: checked, and the model's own kept
        if not isinstance(state[name], torch.Tensor) or state[name].shape != expected[name].shape:
            raise CheckpointError(f"{path}: buffer {name} has shape {tuple(getattr(state[name], 'shape', ()))}, "
                                  f"the architecture builds {tuple(expected[name].shape)} (another n_ctx?)")
    state = {**state, **{k: v for k, v in expected.items() if k in buffers}}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{path}: {name} is a {type(tensor).__name__}, not a tensor")
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(tensor.shape)}, the architecture needs {tuple(expected[name].shape)}")
    check_finite(state, path, buffers)
    return state


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    model.load_state_dict(check_fits(model, state, path))


def sae_lens_config(folder: Path) -> dict:
    return read_json(Path(folder) / "cfg.json")
