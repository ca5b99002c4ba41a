"""One loader per checkpoint format. Each turns local files into a TransformerLens model or an
sae_lens SAE, reports bad files (truncated, corrupt, wrong shapes, NaNs, unsafe pickles) naming the
file, and answers from the config alone (no weights read) what the model's hook points are and how
wide an SAE is, so a manifest is checked before anything is loaded.

MODEL_FORMATS / SAE_FORMATS map a manifest's `loader` value to its format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from verify.loaders import culture_pth, hooked_transformer, legacy_sae, othello_gpt, pretrained, sae_lens_dir, sae_release
from verify.loaders.common import CheckpointError
from verify.params import SAEShape


@dataclass(frozen=True)
class ModelFormat:
    load: Callable[..., Any]  # (device, weights=Path[, config=Path]) -> HookedTransformer
    skeleton: Callable[[dict[str, Path | None]], Any]  # {manifest key: local path, None if not here} -> model on "meta", or None
    files: tuple[str, ...] = ("weights",)  # the [model] keys this format reads
    folder: Callable[[Path], dict[str, Path]] | None = None  # `weights` naming a saved folder -> its files by key
    # formats whose files follow from [model] text keys (a pretrained name): the keys, passed to load and
    # skeleton as keyword arguments, and (keys..., fetch) -> files by key, None where not here (fetch=False)
    keys: tuple[str, ...] = ()
    resolve: Callable[..., dict[str, Path | None]] | None = None


@dataclass(frozen=True)
class SAEFormat:
    load: Callable[[Path, str], Any]  # (path, device) -> sae_lens SAE
    shape: Callable[[Path], SAEShape]  # widths and hook from the config or tensor headers, no weights loaded


MODEL_FORMATS = {
    # TransformerLens' own: state_dict() as model.safetensors + its config as JSON, or a folder of both
    "hooked_transformer": ModelFormat(hooked_transformer.load_hooked_transformer, hooked_transformer.skeleton, ("weights", "config"),
                                      hooked_transformer.folder_files),
    # tommyp111/culture-gpt gpt_00N.pth: a (state_dict, accuracy) tuple
    "culture_pth": ModelFormat(culture_pth.load_culture_pth, culture_pth.skeleton),
    # Othello-GPT: a TransformerLens or minGPT state dict
    "othello_gpt": ModelFormat(othello_gpt.load_othello_gpt, othello_gpt.skeleton),
    # [model] name (+ revision): a TransformerLens pretrained model from the local Hugging Face cache
    "pretrained": ModelFormat(pretrained.load_pretrained, pretrained.skeleton, ("weights", "config"),
                              keys=("name", "revision", "processed"), resolve=pretrained.resolve),
}
SAE_FORMATS = {
    "sae_lens": SAEFormat(sae_lens_dir.load_sae_lens, sae_lens_dir.shape),  # folder with cfg.json + sae_weights.safetensors
    "legacy_othello_sae": SAEFormat(legacy_sae.load_legacy_sae, legacy_sae.shape),  # andyrdt's .pt {cfg, state_dict}, read safely
}

load_culture_pth = culture_pth.load_culture_pth
load_hooked_transformer = hooked_transformer.load_hooked_transformer
load_legacy_sae = legacy_sae.load_legacy_sae
load_othello_gpt = othello_gpt.load_othello_gpt
load_sae_lens = sae_lens_dir.load_sae_lens

__all__ = ["CheckpointError", "MODEL_FORMATS", "SAE_FORMATS", "ModelFormat", "SAEFormat", "load_culture_pth",
           "load_hooked_transformer", "load_legacy_sae", "load_othello_gpt", "load_sae_lens"]
