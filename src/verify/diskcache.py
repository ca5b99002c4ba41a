"""Arrays that are slow to make and depend on no weights (generated puzzles, the answer oracle's
masks), and small JSON records (a skeleton's hook shapes, a registry entry), kept on disk between sessions.

Where: $VERIFY_CACHE_DIR, else ~/.cache/verify; deleting the folder clears the cache. An entry is
named by its key: everything that decides the array (a generator's or definition's version, seeds,
sizes, the layout, a digest of the input data), so a changed generator or definition never reads an
entry made by another; whoever changes what a maker returns bumps the version in its key. An entry
is a numpy .npz (read with allow_pickle=False: loading runs no code) holding the array, its key
and the sha256 of its bytes; one that does not load, or whose key or digest disagree, is made
again and overwritten, never trusted. Before an entry is loaded it must be a regular file (a FIFO
would block the reader) whose array headers declare no more bytes than the file holds (a forged
header would have numpy allocate it: 8 TiB in one test). Entries are written under a temporary name and renamed, so
a reader (another pytest-xdist worker) never sees half a file. A cache folder that cannot be
written costs the time to remake the array, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from verify import timing

ENV = "VERIFY_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "verify")


def digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    h = hashlib.sha256(f"{array.dtype.str} {array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def entry_path(kind: str, key: dict[str, Any]) -> Path:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / kind / f"{name}.npz"


def cached_array(kind: str, key: dict[str, Any], make: Callable[[], np.ndarray],
                 valid: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
    """The array `make()` returns for `key` (JSON-serialisable), from the cache when a sound
    entry is there (and, given `valid`, its array passes it), else made, stored and returned. `kind`
    names the cache's subfolder."""
    path = entry_path(kind, key)
    text = json.dumps(key, sort_keys=True)
    with timing.stage("data"):
        found = read_entry(path, text)
        if found is not None and (valid is None or valid(found)):
            return found
        array = np.asarray(make())
        write_entry(path, text, array)
        return array


def cached_json(kind: str, key: dict[str, Any], make: Callable[[], Any], valid: Callable[[Any], bool]) -> Any:
    """The JSON value `make()` returns for `key`, kept as `cached_array` keeps arrays (its UTF-8
    bytes); an entry that is not JSON, or whose value fails `valid` (damaged or forged, its digest
    checking out), is made again. A made value that fails `valid` is an error, never kept."""
    def encoded() -> np.ndarray:
        text = json.dumps(make())
        if not valid(json.loads(text)):
            raise ValueError(f"cached_json({kind!r}): the value made for {key} is not one its check accepts")
        return np.frombuffer(text.encode(), dtype=np.uint8)

    def parse(array: np.ndarray) -> Any:
        if array.dtype != np.uint8 or array.ndim != 1:
            return _NOT_VALID
        try:
            value = json.loads(array.tobytes())
        except ValueError:  # UnicodeDecodeError included
            return _NOT_VALID
        return value if valid(value) else _NOT_VALID

    array = cached_array(kind, key, encoded, valid=lambda a: parse(a) is not _NOT_VALID)
    return parse(array)


_NOT_VALID = object()


MEMBERS = ("array", "key", "sha256")


def read_entry(path: Path, key: str) -> np.ndarray | None:
    """The entry's array, or None when it is missing, unreadable, or not the entry for `key`."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or not sizes_fit(path):
            return None  # a FIFO would block the reader; a header that declares more than the file holds would allocate it
        with np.load(path, allow_pickle=False) as entry:
            array, stored_key, stored_digest = entry["array"], str(entry["key"]), str(entry["sha256"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return array if stored_key == key and stored_digest == digest(array) else None


def sizes_fit(path: Path) -> bool:
    """Whether each member of the .npz is stored uncompressed (as np.savez writes it) and declares
    no more bytes than it holds: checked from the headers, before np.load allocates the arrays."""
    with zipfile.ZipFile(path) as archive:
        for name in MEMBERS:
            info = archive.getinfo(f"{name}.npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > os.path.getsize(path):
                return False
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)  # np.savez writes 1.0 (2.0 for huge headers)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(member)
                if dtype.hasobject or math.prod(shape) * dtype.itemsize > info.file_size:
                    return False
    return True


def write_entry(path: Path, key: str, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    except OSError:
        return  # an unwritable cache only costs the time to remake the array next session
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, array=array, key=np.array(key), sha256=np.array(digest(array)))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
