"""Where a manifest's files come from: a local path, or a Hugging Face hub file.

Source strings:
- `relative/or/absolute/path`: relative paths are taken from the manifest's folder;
- `hf://owner/repo/path/in/repo[@revision]`: a file (or, with a trailing '/', a folder) of a hub
  model repo, fetched through huggingface_hub's cache;
- `wandb://entity/project/artifact:version`: a wandb artifact, downloaded through wandb's API when
  wandb is installed and online, into ~/.cache/verify/wandb/ (a local download folder can be
  named by its path instead). A download is written aside and renamed when whole, so a folder at
  the cache path is always complete;
- `hf://datasets/owner/name[@revision]`: a hub dataset (for data sources that read one).

`check_source` refuses a malformed hf:// or wandb:// name before anything is fetched.

Offline (no network, or HF_HUB_OFFLINE=1) a hub file that is not already in the local cache is
SourceUnavailable at once: availability is decided from the cache first, so nothing waits for
huggingface_hub's retries.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HF_PREFIX = "hf://"
WANDB_PREFIX = "wandb://"
WANDB_CACHE = Path(os.environ.get("VERIFY_WANDB_CACHE", Path.home() / ".cache" / "verify" / "wandb"))


class SourceUnavailable(RuntimeError):
    """A source that cannot be had here (offline hub file); claims on it are skipped, not failed."""


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str  # a path inside the repo; ends with '/' for a folder
    revision: str | None

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


HF_DATASETS = HF_PREFIX + "datasets/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_hub(source: str) -> HubFile:
    body = source[len(HF_PREFIX) :]
    body, at, revision = body.partition("@")
    parts = body.split("/", 2)
    if len(parts) < 3 or not all(parts) or not all(_NAME.match(p) for p in parts[:2]) or (at and not revision):
        raise ValueError(f"hub source {source!r} must look like hf://owner/repo/path/in/repo[@revision]")
    return HubFile(f"{parts[0]}/{parts[1]}", parts[2], revision or None)


def parse_hub_dataset(source: str) -> tuple[str, str | None]:
    """hf://datasets/owner/name[@revision] -> ("owner/name", revision)."""
    body, at, revision = source[len(HF_DATASETS) :].partition("@")
    parts = body.split("/")
    if len(parts) != 2 or not all(_NAME.match(p) for p in parts) or (at and not revision):
        raise ValueError(f"hub dataset {source!r} must look like hf://datasets/owner/name[@revision]")
    return body, revision or None


@dataclass(frozen=True)
class WandbArtifact:
    entity: str
    project: str
    artifact: str
    version: str

    def __str__(self) -> str:
        return f"{self.entity}/{self.project}/{self.artifact}:{self.version}"


def parse_wandb(source: str) -> WandbArtifact:
    body = source[len(WANDB_PREFIX) :]
    path, colon, version = body.rpartition(":")
    parts = path.split("/") if colon else []
    if len(parts) != 3 or not all(_NAME.match(p) for p in parts) or not _NAME.match(version):
        raise ValueError(f"wandb source {source!r} must look like wandb://entity/project/artifact:version")
    return WandbArtifact(*parts, version)


def check_source(source: str) -> None:
    """Raise ValueError for a malformed remote source name (local paths are checked by existence)."""
    if source.startswith(HF_DATASETS):
        parse_hub_dataset(source)
    elif is_hub(source):
        parse_hub(source)
    elif source.startswith(WANDB_PREFIX):
        parse_wandb(source)


def is_hub(source: str) -> bool:
    return source.startswith(HF_PREFIX)


def is_remote(source: str) -> bool:
    return source.startswith((HF_PREFIX, WANDB_PREFIX))


def local_path(source: str, base: Path) -> Path:
    path = Path(source).expanduser()
    return path if path.is_absolute() else (base / path)


@lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """False when offline mode is set or huggingface.co cannot be reached within a second."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=1.0).close()
        return True
    except OSError:
        return False


def fetch(source: str, base: Path) -> Path:
    """A local path for `source`, downloading a hub file when online. Raises SourceUnavailable."""
    if source.startswith(WANDB_PREFIX):
        return _fetch_wandb(parse_wandb(source))
    if not is_hub(source):
        path = local_path(source, base)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file (named in a manifest in {base})")
        return path
    hub = parse_hub(source)
    if hub.filename.endswith("/"):
        return _fetch_hub_folder(hub)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hub.repo_id, hub.filename, revision=hub.revision)
    if isinstance(cached, str):
        return Path(cached)
    if not hub_reachable():
        raise SourceUnavailable(f"not available offline: {hub}")
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision))


def _fetch_hub_folder(hub: HubFile) -> Path:
    from huggingface_hub import snapshot_download

    pattern = hub.filename + "*"
    try:
        root = snapshot_download(hub.repo_id, revision=hub.revision, allow_patterns=[pattern], local_files_only=True)
        if (Path(root) / hub.filename).is_dir():
            return Path(root) / hub.filename
    except Exception:  # noqa: BLE001 - any cache miss means: go online or give up
        pass
    if not hub_reachable():
        raise SourceUnavailable(f"not available offline: {hub}")
    root = snapshot_download(hub.repo_id, revision=hub.revision, allow_patterns=[pattern])
    return Path(root) / hub.filename


def cached(source: str) -> Path | None:
    """The local copy of a hub or wandb source, from the cache only (nothing is requested or downloaded)."""
    if not is_hub(source):
        folder = wandb_folder(parse_wandb(source))
        return folder if folder.is_dir() and any(folder.iterdir()) else None
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    hub = parse_hub(source)
    if hub.filename.endswith("/"):
        try:
            root = Path(snapshot_download(hub.repo_id, revision=hub.revision, allow_patterns=[hub.filename + "*"], local_files_only=True))
        except Exception:  # noqa: BLE001 - any cache miss
            return None
        return root / hub.filename if (root / hub.filename).is_dir() else None
    found = try_to_load_from_cache(hub.repo_id, hub.filename, revision=hub.revision)
    return Path(found) if isinstance(found, str) else None


def wandb_folder(artifact: WandbArtifact) -> Path:
    return WANDB_CACHE / f"{artifact.entity}__{artifact.project}__{artifact.artifact}_{artifact.version}"


def _fetch_wandb(artifact: WandbArtifact) -> Path:
    name = str(artifact)
    folder = wandb_folder(artifact)
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    try:
        import wandb
    except ImportError:
        raise SourceUnavailable(f"not available: wandb artifact {name} (wandb is not installed; download it and name the folder)") from None
    try:
        socket.create_connection(("api.wandb.ai", 443), timeout=1.0).close()
    except OSError:
        raise SourceUnavailable(f"not available offline: wandb artifact {name}") from None
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted download left
    wandb.Api().artifact(name).download(root=str(partial))
    partial.rename(folder)  # whole, or not there at all
    return folder


def cached_hub_dataset(source: str) -> Path:
    """The local snapshot of a hub dataset, from the cache only (no request, no retries)."""
    from huggingface_hub import snapshot_download

    name, revision = parse_hub_dataset(source)
    try:
        return Path(snapshot_download(name, repo_type="dataset", revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss
        raise SourceUnavailable(f"not available offline: dataset {name}") from None


def check_regular_file(path: Path) -> Path:
    """path, when it names a regular file (links followed). Anything else where a file is expected
    is refused before it is opened: a FIFO blocks a reader forever, a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "something else")
        raise ValueError(f"{path}: a regular file is expected here, and this is {kind}")
    return Path(path)


_FILE_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (it would block the reader)"),
               (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]


def sha256_of(path: Path) -> str:
    check_regular_file(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    if expected and (actual := sha256_of(path)) != expected:
        raise ValueError(f"{path}: sha256 is {actual}, but the manifest expects {expected} (file changed or corrupt)")
