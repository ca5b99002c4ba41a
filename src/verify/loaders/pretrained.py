"""TransformerLens pretrained models by name: `[model] name = "gpt2"` (an official name or alias
TransformerLens lists), `revision` optional (a branch, tag or commit of the hub repo).

The files are the hub repo's config.json and model.safetensors, read from the local Hugging Face
cache (downloaded into it first when the hub can be reached; offline, a model not cached is
SourceUnavailable at once). TransformerLens itself turns them into a HookedTransformer, through
transformer_lens.loading_from_pretrained (get_pretrained_model_config and get_pretrained_state_dict,
what HookedTransformer.from_pretrained_no_processing calls) with local_files_only=True: no request,
no weight processing (no LayerNorm folding or centering), and no tokenizer (the verifier feeds token
ids). At collection the architecture comes from config.json alone, on the meta device.

`processed = true` applies what HookedTransformer.from_pretrained does by default (fold LayerNorm,
center the writing weights and the unembedding, fold value biases): the model an SAE trained on a
from_pretrained model reads (SAELens records it, e.g. gpt2-small-res-jb's center_writing_weights).

Refused by name: models whose weights are pickled .pth checkpoints (NeelNanda/..., ArthurConmy/...,
Baidicoot/...: unpickling runs code; name such a file with a loader that reads it safely) and models
that need their repo's own code (trust_remote_code)."""

from __future__ import annotations

from pathlib import Path

import torch

from verify import diskcache, sources
from verify.loaders.common import CheckpointError, buffer_names, check_finite, regular_file
from verify.skeletons import package_version

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PICKLED = ("NeelNanda", "ArthurConmy", "Baidicoot")


def official_name(name: str) -> str:
    """TransformerLens' official name for `name` (an alias such as "gpt2-small" included). What
    TransformerLens says of a name is kept in the disk cache per its version, so reading a manifest
    does not import it (verify.skeletons)."""
    said = diskcache.cached_json("official-name", {"name": name, "transformer_lens": package_version("transformer_lens")},
                                 lambda: name_verdict(name), valid=is_name_verdict)
    if "refused" in said:
        raise CheckpointError(said["refused"])
    if Path(said["official"]).exists():  # TransformerLens reads a path of that name before the cache
        raise CheckpointError(f"{name!r}: the working directory holds {said['official']!r}, which TransformerLens would read "
                              "instead of the Hugging Face cache; run from another folder")
    return said["official"]


def name_verdict(name: str) -> dict[str, str]:
    """{"official": TransformerLens' name} or {"refused": why this name is not loaded}."""
    from transformer_lens import loading_from_pretrained as tl

    try:
        official = tl.get_official_model_name(name)
    except ValueError:
        return {"refused": f"{name!r} is not a model TransformerLens supports (its list: "
                           "transformer_lens.supported_models.OFFICIAL_MODEL_NAMES and MODEL_ALIASES)"}
    if official.startswith(PICKLED):
        return {"refused": f"{name!r} ({official}): its weights are a pickled .pth checkpoint, which is not unpickled here; "
                           "download the file and name it with a loader that reads it safely"}
    if official.startswith(tl.NEED_REMOTE_CODE_MODELS) or official in tl.NON_HF_HOSTED_MODEL_NAMES:
        return {"refused": f"{name!r} ({official}): it needs its repository's own code (trust_remote_code) or is not "
                           "hosted on the hub; not loaded"}
    return {"official": official}


def is_name_verdict(said) -> bool:
    return isinstance(said, dict) and len(said) == 1 and next(iter(said)) in ("official", "refused") and isinstance(next(iter(said.values())), str)


def cached_files(name: str, revision: str) -> dict[str, Path | None]:
    """{"config": config.json, "weights": model.safetensors} from the local cache (None where not cached)."""
    from huggingface_hub import try_to_load_from_cache

    repo = official_name(name)
    found = {key: try_to_load_from_cache(repo, file, revision=revision or None) for key, file in (("config", CONFIG), ("weights", WEIGHTS))}
    return {key: Path(path) if isinstance(path, str) else None for key, path in found.items()}


def fetch_files(name: str, revision: str) -> dict[str, Path]:
    """The model's files in the local cache, downloaded when missing and the hub can be reached."""
    files = cached_files(name, revision)
    missing = [key for key, path in files.items() if path is None]
    if missing:
        where = f"{official_name(name)}" + (f"@{revision}" if revision else "")
        if not sources.hub_reachable():
            raise sources.SourceUnavailable(f"not available offline: {where} ({', '.join({'config': CONFIG, 'weights': WEIGHTS}[k] for k in missing)} "
                                            "not in the local Hugging Face cache; `hf download` it)")
        from huggingface_hub import hf_hub_download

        files = {key: Path(hf_hub_download(official_name(name), file, revision=revision or None))
                 for key, file in (("config", CONFIG), ("weights", WEIGHTS))}
    return files


def resolve(name: str, revision: str, processed: bool, fetch: bool) -> dict[str, Path | None]:
    return fetch_files(name, revision) if fetch else cached_files(name, revision)


def hooked_config(name: str, revision: str, device: str, processed: bool = False):
    """TransformerLens' HookedTransformerConfig for the cached model (its config.json), no tokenizer."""
    from transformer_lens import loading_from_pretrained as tl

    try:
        cfg = tl.get_pretrained_model_config(official_name(name), revision=revision or None, local_files_only=True,
                                             device=device, fold_ln=processed)  # folded: LNPre, as from_pretrained builds it
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - transformers and TransformerLens raise many types for a bad config
        raise CheckpointError(f"{name}: TransformerLens cannot read its cached {CONFIG}: {type(err).__name__}: {err}") from None
    cfg.tokenizer_name = None  # token ids in, no tokenizer (whose files the cache need not hold)
    return cfg


def skeleton(files: dict[str, Path | None], name: str, revision: str, processed: bool):
    """The architecture on the meta device from the cached config.json (None while it is not cached)."""
    from transformer_lens import HookedTransformer

    if files.get("config") is None:
        return None
    cfg = hooked_config(name, revision, "meta", processed)
    with torch.device("meta"):
        return HookedTransformer(cfg)


def load_pretrained(weights: Path, config: Path, device: str, name: str, revision: str, processed: bool):
    """The HookedTransformer TransformerLens builds for `name`, with exactly the cached weights."""
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as tl

    regular_file(weights)
    regular_file(config)
    cfg = hooked_config(name, revision, "cpu", processed)
    try:
        state = tl.get_pretrained_state_dict(official_name(name), cfg, revision=revision or None, local_files_only=True,
                                             use_safetensors=True)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - a truncated or mismatched cached file
        raise CheckpointError(f"{weights}: TransformerLens cannot load {name}'s cached weights: {type(err).__name__}: {err}") from None
    model = HookedTransformer(cfg)
    check_finite(state, weights, buffer_names(model))
    try:  # TransformerLens' own fill (zero biases gpt2 has none of), processed as from_pretrained does or not at all
        model.load_and_process_state_dict(state, fold_ln=processed, center_writing_weights=processed, center_unembed=processed,
                                          fold_value_biases=processed, refactor_factored_attn_matrices=False)
    except Exception as err:  # noqa: BLE001 - shapes that do not fit the config
        text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        raise CheckpointError(f"{weights}: the weights do not fit {name}'s cached {CONFIG}: {text}") from None
    return model.to(device).eval()
