"""One loader per checkpoint format. Each turns local files into a TransformerLens model or an
sae_lens SAE, and reports bad files (truncated, corrupt, wrong shapes, NaNs, unsafe pickles)
naming the file. MODEL_LOADERS / SAE_LOADERS map a manifest's `loader` value to its function."""

from __future__ import annotations

from verify.loaders.common import CheckpointError, hooked_transformer_config, read_json, read_safetensors, sae_lens_config
from verify.loaders.culture_pth import load_culture_pth
from verify.loaders.hooked_transformer import load_hooked_transformer
from verify.loaders.legacy_sae import load_legacy_sae
from verify.loaders.othello_gpt import load_othello_gpt
from verify.loaders.sae_lens_dir import load_sae_lens

MODEL_LOADERS = {
    "hooked_transformer": load_hooked_transformer,  # model.safetensors + model_config.json
    "culture_pth": load_culture_pth,  # tommyp111/culture-gpt gpt_00N.pth (state_dict, accuracy) tuple
    "othello_gpt": load_othello_gpt,  # Othello-GPT .pth: TransformerLens or minGPT state dict
}
SAE_LOADERS = {
    "sae_lens": load_sae_lens,  # folder with cfg.json + sae_weights.safetensors
    "legacy_othello_sae": load_legacy_sae,  # andyrdt's .pt {cfg: pickled config, state_dict}, read safely
}

__all__ = ["CheckpointError", "MODEL_LOADERS", "SAE_LOADERS", "hooked_transformer_config", "load_culture_pth",
           "load_hooked_transformer", "load_legacy_sae", "load_othello_gpt", "load_sae_lens", "read_json",
           "read_safetensors", "sae_lens_config"]
