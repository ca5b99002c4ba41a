"""andyrdt's Othello SAEs (wandb artifacts): a .pt = torch.save({"cfg": <pickled config dataclass>,
"state_dict": {W_enc, b_enc, W_dec, b_dec}}).

The config class (sae_training.config.LanguageModelSAERunnerConfig) is not importable and must
never be unpickled blindly: torch's weights-only unpickler is given a plain stand-in class under
that one name, so the config's fields arrive as data and any other global (os.system, ...) is
refused before it can run. Acts = ReLU((x - b_dec) W_enc + b_enc), i.e. apply_b_dec_to_input.
"""

from __future__ import annotations

from pathlib import Path

import torch

from verify.loaders.common import CheckpointError, check_finite, regular_file, torch_load_problem
from verify.params import SAEShape

CONFIG_CLASS = "sae_training.config.LanguageModelSAERunnerConfig"


class LegacyConfig:
    """Receives the pickled config's fields in __dict__; has no behaviour."""


def read_legacy(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config fields, state dict) of a legacy SAE .pt, or a folder holding exactly one (wandb download)."""
    import pickle

    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("*.pt"))
        if len(found) != 1:
            raise CheckpointError(f"{path}: expected one .pt file in this artifact folder, found {len(found)}")
        path = found[0]
    regular_file(path)
    try:
        with torch.serialization.safe_globals([(LegacyConfig, CONFIG_CLASS)]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: refused to unpickle: {torch_load_problem(err)}; only tensors and "
                              f"{CONFIG_CLASS} are allowed") from None
    except TypeError as err:  # the config class called with arguments: the stand-in takes none
        raise CheckpointError(f"{path}: the pickled {CONFIG_CLASS} is not plain data ({err})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable torch file ({torch_load_problem(err)}); truncated or corrupt?") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "cfg" not in obj:
        raise CheckpointError(f"{path}: expected {{'cfg': ..., 'state_dict': ...}}, got {type(obj).__name__}")
    cfg = obj["cfg"]
    fields = dict(vars(cfg)) if isinstance(cfg, LegacyConfig) else dict(cfg) if isinstance(cfg, dict) else None
    if fields is None:
        raise CheckpointError(f"{path}: 'cfg' is a {type(cfg).__name__}, not the legacy config")
    if not isinstance(fields.get("hook_point", ""), str):
        raise CheckpointError(f"{path}: cfg hook_point is a {type(fields['hook_point']).__name__}, not a hook name")
    state = obj["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    missing = [k for k in ("W_enc", "b_enc", "W_dec", "b_dec") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: state_dict lacks {missing}")
    odd = next((k for k in ("W_enc", "b_enc", "W_dec", "b_dec") if not (isinstance(state[k], torch.Tensor) and state[k].is_floating_point())), None)
    if odd is not None:
        raise CheckpointError(f"{path}: state_dict[{odd!r}] is a {type(state[odd]).__name__}, not a float tensor")
    if state["W_enc"].dim() != 2:
        raise CheckpointError(f"{path}: W_enc has shape {tuple(state['W_enc'].shape)}, expected (d_in, d_sae)")
    d_in, d_sae = state["W_enc"].shape
    if state["W_dec"].shape != (d_sae, d_in) or state["b_enc"].shape != (d_sae,) or state["b_dec"].shape != (d_in,):
        raise CheckpointError(f"{path}: inconsistent shapes W_enc {tuple(state['W_enc'].shape)}, W_dec {tuple(state['W_dec'].shape)}, "
                              f"b_enc {tuple(state['b_enc'].shape)}, b_dec {tuple(state['b_dec'].shape)}")
    check_finite(state, path)
    return fields, state


def load_legacy_sae(path: Path, device: str):
    """The legacy SAE as an sae_lens StandardSAE (apply_b_dec_to_input=True: x - b_dec before encoding)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    fields, state = read_legacy(path)  # shapes checked there
    d_in, d_sae = state["W_enc"].shape
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=True, device=device)
    cfg.metadata.hook_name = fields.get("hook_point", "")
    sae = StandardSAE(cfg)
    sae.load_state_dict({k: state[k].float() for k in ("W_enc", "b_enc", "W_dec", "b_dec")})
    return sae.to(device).eval()


def shape(path: Path) -> SAEShape:
    """Widths from the tensors' shapes and the hook from the config (the file is read safely)."""
    fields, state = read_legacy(path)
    d_in, d_sae = state["W_enc"].shape
    return SAEShape(fields.get("hook_point"), int(d_in), int(d_sae))
