"""A manifest's model architecture, as hook shapes, kept in the disk cache between sessions.

Checking a manifest needs its model's hook points and widths (an SAE's hook must exist and fit), which
come from a skeleton: the architecture built by TransformerLens on the meta device. Importing
TransformerLens costs about 3 s of every process that reads manifests, including those that never
load a model (pytest-xdist's controller, `--collect-only`, `verify subjects`). The shapes depend only
on what the skeleton reads, so they are kept in verify.diskcache under:
- the loader, its manifest keys (name, revision, processed) and `api`;
- each file the loader resolved: small files (configs, up to SMALL_FILE bytes) by their sha256, so
  an edited config is seen at once; bigger ones (weights, whose tensor shapes a skeleton may read) by
  path, size and modification time, since hashing gigabytes at every collection is what this avoids;
- the versions of transformer_lens and transformers, and SKELETON_VERSION.
A damaged or forged entry (not a record `record` writes) is made again. Loading a subject checks the
real model's widths against its SAEs again (verify.subjects.load_subject), so a stale entry can at
worst fail later, never pass a mismatch.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from verify import diskcache

# bump when what `record` computes from a skeleton changes (hooks.hook_shapes, bridge.unsupported)
SKELETON_VERSION = 1
SMALL_FILE = 1 << 20


def file_identity(path: Path | None) -> list | None:
    if path is None:
        return None
    stat = path.stat()
    if stat.st_size <= SMALL_FILE and path.is_file():
        return [str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest()]
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def record(skeleton, api: str) -> dict:
    """What a manifest check reads of a skeleton: its hook shapes (None without one) and, for
    `api = "bridge"`, why a TransformerBridge cannot run it (None: it can)."""
    from verify import hooks
    from verify.loaders import bridge

    if skeleton is None:
        return {"hooks": None, "bridge_problem": None}
    problem = bridge.unsupported(skeleton) if api == "bridge" else None
    shapes = None if problem is not None else {name: list(shape) for name, shape in hooks.hook_shapes(skeleton).items()}
    return {"hooks": shapes, "bridge_problem": problem}


def is_record(found) -> bool:
    """Whether a kept value is one `record` makes (a damaged or forged entry is made again)."""
    if not isinstance(found, dict) or set(found) != {"hooks", "bridge_problem"}:
        return False
    shapes, problem = found["hooks"], found["bridge_problem"]
    return (problem is None or isinstance(problem, str)) and (shapes is None or (isinstance(shapes, dict) and all(
        isinstance(name, str) and isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
        for name, shape in shapes.items())))


def skeleton_record(loader: str, api: str, keys: dict, files: dict[str, Path | None], build: Callable[[], object]) -> dict:
    """`record(build(), api)`, from the disk cache when an entry for these files is there. A
    CheckpointError of `build` is raised every time (nothing is kept)."""
    key = {"version": SKELETON_VERSION, "loader": loader, "api": api, "keys": keys,
           "files": {name: file_identity(path) for name, path in sorted(files.items())},
           "transformer_lens": package_version("transformer_lens"), "transformers": package_version("transformers")}
    return diskcache.cached_json("skeleton", key, lambda: record(build(), api), is_record)
