"""TransformerLens' own files: a HookedTransformer's `state_dict()` saved with safetensors, and its
config's arguments as JSON (`model.cfg.to_dict()`, or only the architecture keys).

Named separately (`weights` = model.safetensors, `config` = model_config.json) or as one folder
(`weights` = the folder, holding model.safetensors and config.json or model_config.json). The buffers
TransformerLens builds itself (causal masks, IGNORE = -inf, rotary tables), which a `state_dict()`
carries, are recognised by name from the architecture: checked for shape, rebuilt, never judged as
weights."""

from __future__ import annotations

from pathlib import Path

from verify.loaders.common import (CheckpointError, buffer_names, check_fits, hooked_transformer_config,
                                   load_state_dict_checked, meta_model, read_safetensors)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAMES = ("config.json", "model_config.json")


def folder_files(folder: Path) -> dict[str, Path]:
    """The weights and config of a saved folder."""
    configs = [folder / name for name in CONFIG_NAMES if (folder / name).is_file()]
    if not (folder / WEIGHTS_NAME).is_file() or len(configs) != 1:
        raise CheckpointError(f"{folder}: a saved HookedTransformer folder holds {WEIGHTS_NAME} and one of "
                              f"{' or '.join(CONFIG_NAMES)}; found {sorted(p.name for p in folder.iterdir())[:10]}")
    return {"weights": folder / WEIGHTS_NAME, "config": configs[0]}


def load_hooked_transformer(weights: Path, config: Path, device: str):
    """A HookedTransformer with exactly these weights (no LayerNorm folding or centering)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = hooked_transformer_config(config)
    skeleton = meta_model(cfg)  # before the model's memory is allocated: the config may be absurd
    state = read_safetensors(weights, buffer_names(skeleton))
    check_fits(skeleton, state, weights)
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"))
    load_state_dict_checked(model, state, weights)
    return model.to(device).eval()


def skeleton(files: dict[str, Path | None]):
    """The architecture from the config alone, on the meta device (None while the config is remote)."""
    return None if files.get("config") is None else meta_model(hooked_transformer_config(files["config"]))
