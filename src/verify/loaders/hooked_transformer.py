"""The embedded subjects' format: model.safetensors + model_config.json (HookedTransformerConfig args)."""

from __future__ import annotations

from pathlib import Path

from verify.loaders.common import check_fits, hooked_transformer_config, load_state_dict_checked, meta_model, read_safetensors


def load_hooked_transformer(weights: Path, config: Path, device: str):
    """A HookedTransformer with exactly these weights (no LayerNorm folding or centering)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = hooked_transformer_config(config)
    state = read_safetensors(weights)
    check_fits(meta_model(cfg), state, weights)  # before the model's memory is allocated: the config may be absurd
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"))
    load_state_dict_checked(model, state, weights)
    return model.to(device).eval()


def skeleton(files: dict[str, Path | None]):
    """The architecture from model_config.json alone, on the meta device (None while the config is remote)."""
    return None if files.get("config") is None else meta_model(hooked_transformer_config(files["config"]))
