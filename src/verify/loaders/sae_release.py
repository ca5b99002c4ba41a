"""SAELens pretrained releases: `[saes.NAME] release = "gpt2-small-res-jb", sae_id = "blocks.8.hook_resid_pre"`.

SAELens' own registry (sae_lens.loading.pretrained_saes_directory, the pretrained_saes.yaml shipped
with the installed sae_lens) says which hub repo and folder `SAE.from_pretrained(release, sae_id)`
downloads; the SAE is then that hub folder (`hf://repo/folder/`: cfg.json + sae_weights.safetensors),
read from the local Hugging Face cache like any hub SAE (offline and not cached: skipped with the
reason), pinned by its files' sha256 and loaded by the `sae_lens` loader. Releases SAELens converts
from another format (a `conversion_func`) or rescales (a `norm_scaling_factor`) are refused: the
folder alone would not be the SAE that from_pretrained gives.

The numbers the registry publishes for an SAE (`variance_explained`, `l0`) are what `published`
returns, for `verify fidelity-floors`; SAELens fills 1.0 and 0.0 where its YAML records none, so
those values count as not published.

Parsing that registry takes about 1.3 s (a 1.5 MB YAML file), at every collection that reads a manifest
naming a release. What this module takes from it for a release and sae_id (hub repo, folder, published
numbers) is kept in verify.diskcache, keyed by the sha256 of the installed pretrained_saes.yaml, so a
changed or upgraded registry is read again; a refused release is not cached and is refused again; an
entry whose content is not a record this module writes (damaged, or forged with a matching digest) is
made again."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from verify import diskcache
from verify.loaders.common import CheckpointError

ENTRY_VERSION = 2  # of what `entry` keeps: bump when it changes (2: published in the registry's key order)

# what sae_lens' get_pretrained_saes_directory fills in when a release's YAML records nothing
UNRECORDED = {"variance_explained": 1.0, "l0": 0.0}


def lookup(release: str, sae_id: str):
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        close = sorted(r for r in directory if r.split("-")[0] == release.split("-")[0])[:5]
        raise CheckpointError(f"release {release!r} is not in SAELens' pretrained registry (sae_lens's pretrained_saes.yaml)"
                              + (f"; releases like it: {', '.join(close)}" if close else ""))
    found = directory[release]
    if sae_id not in found.saes_map:
        raise CheckpointError(f"release {release!r} has no sae_id {sae_id!r} (its ids: {', '.join(list(found.saes_map)[:8])}"
                              + (", ..." if len(found.saes_map) > 8 else "") + ")")
    if found.conversion_func:
        raise CheckpointError(f"release {release!r} is converted by SAELens ({found.conversion_func}) from another format; "
                              "only releases stored as sae_lens folders are read")
    if sae_id in found.norm_scaling_factor:
        raise CheckpointError(f"release {release!r} {sae_id}: SAELens rescales its inputs (norm_scaling_factor "
                              f"{found.norm_scaling_factor[sae_id]}), which the folder alone does not")
    return found


def registry_file() -> Path:
    """The installed sae_lens' pretrained_saes.yaml, found without importing sae_lens."""
    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("sae_lens is not installed: a release cannot be looked up")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained_saes.yaml"


def entry(release: str, sae_id: str) -> dict:
    """What verify reads of the registry for this SAE: {"repo_id", "folder", "published"}; refused
    releases raise CheckpointError (`lookup`). Kept on disk per registry file (the module's docstring)."""
    def make() -> dict:
        from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

        found = lookup(release, sae_id)
        values = {"variance_explained": found.expected_var_explained.get(sae_id), "l0": found.expected_l0.get(sae_id)}
        repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
        return {"repo_id": repo_id, "folder": folder,  # key order as built: published keeps the registry's
                "published": {k: float(v) for k, v in values.items() if v is not None and float(v) != UNRECORDED[k]}}

    registry = registry_file()
    key = {"version": ENTRY_VERSION, "release": release, "sae_id": sae_id,
           "registry_sha256": hashlib.sha256(registry.read_bytes()).hexdigest()}
    return diskcache.cached_json("sae-release", key, make, valid=is_entry)


def is_entry(record) -> bool:
    """Whether a kept value is a record `entry` writes; one that is not (a damaged or forged file
    whose own digest checks out) is made again from the registry."""
    return (isinstance(record, dict) and set(record) == {"repo_id", "folder", "published"}
            and isinstance(record["repo_id"], str) and isinstance(record["folder"], str)
            and isinstance(record["published"], dict)
            and all(k in UNRECORDED and isinstance(v, float) for k, v in record["published"].items()))


def source(release: str, sae_id: str) -> str:
    """The hub folder `SAE.from_pretrained(release, sae_id)` reads, as an hf:// source."""
    found = entry(release, sae_id)
    return f"hf://{found['repo_id']}/{found['folder'].strip('/')}/"


def published(release: str, sae_id: str) -> dict[str, float]:
    """The numbers SAELens' registry records for this SAE: variance_explained, l0 (absent where unrecorded)."""
    return entry(release, sae_id)["published"]
