"""sae_lens SAE folders: cfg.json + sae_weights.safetensors (SAE.load_from_disk)."""

from __future__ import annotations

from pathlib import Path

from verify.loaders.common import CheckpointError, read_safetensors, sae_lens_config
from verify.params import SAEShape


def load_sae_lens(folder: Path, device: str):
    from sae_lens import SAE

    folder = Path(folder)
    for name in ("cfg.json", "sae_weights.safetensors"):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: missing {name} (an sae_lens SAE folder needs cfg.json and sae_weights.safetensors)")
    sae_lens_config(folder)
    read_safetensors(folder / "sae_weights.safetensors")  # clear errors for corrupt or NaN weights
    try:
        sae = SAE.load_from_disk(str(folder), device=device)
    except Exception as err:  # noqa: BLE001 - sae_lens raises many types for shape/config mistakes
        raise CheckpointError(f"{folder}: sae_lens could not load this SAE: {err}") from None
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
    return SAEShape(cfg.get("metadata", {}).get("hook_name", cfg.get("hook_name")), dims["d_in"], dims["d_sae"])
