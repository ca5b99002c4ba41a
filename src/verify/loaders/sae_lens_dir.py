"""sae_lens SAE folders: cfg.json + sae_weights.safetensors (SAE.load_from_disk)."""

from __future__ import annotations

from pathlib import Path

from verify.loaders.common import CheckpointError, read_safetensors, regular_file, sae_lens_config
from verify.params import SAEShape


def load_sae_lens(folder: Path, device: str):
    from sae_lens import SAE

    folder = Path(folder)
    for name in ("cfg.json", "sae_weights.safetensors"):
        if not (folder / name).exists():
            raise CheckpointError(f"{folder}: missing {name} (an sae_lens SAE folder needs cfg.json and sae_weights.safetensors)")
    shape(folder)  # the config's widths against the tensors' shapes, in one line
    read_safetensors(folder / WEIGHTS)  # clear errors for corrupt or NaN weights
    try:
        sae = SAE.load_from_disk(str(folder), device=device)
    except Exception as err:  # noqa: BLE001 - sae_lens raises many types for shape/config mistakes
        text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())  # torch lists mismatches one a line
        raise CheckpointError(f"{folder}: sae_lens could not load this SAE: {text}") from None
    return sae.eval()


def shape(folder: Path) -> SAEShape:
    """d_in, d_sae and hook from cfg.json (sae_lens 6 keeps the hook under metadata, 3.x at the top)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: folder does not exist")
    cfg = sae_lens_config(folder)
    dims = {k: cfg.get(k) for k in ("d_in", "d_sae")}
    bad = [k for k, v in dims.items() if not (isinstance(v, int) and v > 0)]
    if bad:
        raise CheckpointError(f"{folder}/cfg.json: {bad[0]} must be a positive integer, got {dims[bad[0]]!r}")
    metadata = cfg.get("metadata", {})
    hook = (metadata if isinstance(metadata, dict) else {}).get("hook_name", cfg.get("hook_name"))
    if hook is not None and not isinstance(hook, str):
        raise CheckpointError(f"{folder}/cfg.json: hook_name must be a string, got {hook!r}")
    if (folder / WEIGHTS).exists():
        check_shapes(folder / WEIGHTS, dims["d_in"], dims["d_sae"])
    return SAEShape(hook, dims["d_in"], dims["d_sae"])


WEIGHTS = "sae_weights.safetensors"


def check_shapes(path: Path, d_in: int, d_sae: int) -> None:
    """The encoder and decoder tensors (from the file's header, no weights read) in the widths cfg.json gives."""
    from safetensors import safe_open

    regular_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{path}: not a readable safetensors file ({err}); truncated or corrupt?") from None
    needed = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    wrong = [f"{k} {shapes[k]} (needs {v})" for k, v in needed.items() if k in shapes and shapes[k] != v]
    if wrong:
        raise CheckpointError(f"{path}: tensor shapes do not fit cfg.json's d_in {d_in}, d_sae {d_sae}: {', '.join(wrong)}")
