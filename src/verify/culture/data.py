"""Puzzle data per task, through `datasets`: a hub dataset, a save_to_disk folder or parquet files.

The published data (`tommyp111/culture-puzzles-1M-partitioned`) has one split per task, with
`input_ids` (405 int32) and `label` columns. Selection and confirmation are disjoint row ranges; a
row repeating an earlier one of its split is removed (counted), and a confirmation row equal to a
selection row makes the dataset refused (`check_disjoint`). Synthetic splits are drawn from seeded
streams without repeats and without the selection split's puzzles (verify.culture.tasks.cached_split).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from verify import sources

TASKS = ("contact", "corners", "detect", "frame", "grow", "half_fill", "replace_color", "translate")
HF_DATASETS = sources.HF_DATASETS


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    return task


def open_dataset(path: str, base: Path):
    """A DatasetDict (or IterableDatasetDict) of task splits. Raises SourceUnavailable offline,
    at once: without the network the hub copy is read from the local cache or not at all."""
    import datasets

    if path.startswith(HF_DATASETS):
        if not sources.hub_reachable():
            return parquet_dataset(sources.cached_hub_dataset(path))
        name, revision = sources.parse_hub_dataset(path)
        return datasets.load_dataset(name, revision=revision)
    folder = sources.local_path(path, base)
    if (folder / "dataset_dict.json").is_file():
        for entry in folder.rglob("*"):  # a FIFO among the arrow files would block datasets' reader forever
            if not entry.is_dir():
                sources.check_regular_file(entry)
        return datasets.load_from_disk(str(folder))
    return parquet_dataset(folder)


def dataset_files(path: str, base: Path) -> list[Path]:
    """The local files `open_dataset` reads for `path` (for the ledger's hashes); [] when a hub
    dataset was read by `datasets` into a cache of its own."""
    try:
        folder = sources.cached_hub_dataset(path) if path.startswith(HF_DATASETS) else sources.local_path(path, base)
    except sources.SourceUnavailable:
        return []
    if (folder / "dataset_dict.json").is_file():
        return sorted(p for p in folder.rglob("*") if p.is_file())
    return [p for task in TASKS for p in task_files(folder, task)]


PARQUET_PLACES = (".", "data")  # where a task's parquet files lie in a folder (the hub repo uses data/)


def task_files(folder: Path, task: str) -> list[Path]:
    """A task's parquet files: `<task>.parquet` or `<task>-*.parquet` (shards), directly in the
    folder or in its data/ folder; nothing deeper, so a stray backup copy is never read."""
    return sorted(p for place in PARQUET_PLACES for pattern in (f"{task}.parquet", f"{task}-*.parquet")
                  for p in (folder / place).glob(pattern) if p.is_file())


def parquet_dataset(folder: Path):
    import datasets

    files = {task: [str(p) for p in task_files(folder, task)] for task in TASKS}
    files = {task: paths for task, paths in files.items() if paths}
    if not files:
        raise FileNotFoundError(f"{folder}: neither a save_to_disk folder (dataset_dict.json) nor parquet files "
                                f"<task>.parquet or <task>-*.parquet in it or in its data/ folder")
    return datasets.load_dataset("parquet", data_files=files)


def row_digest(row) -> bytes:
    """A digest of one puzzle (its tokens as int64), to compare puzzles without comparing every pair."""
    return hashlib.sha1(np.ascontiguousarray(row, dtype=np.int64).tobytes()).digest()


def row_hashes(rows: torch.Tensor) -> list[bytes]:
    """A digest per puzzle."""
    return [row_digest(row.numpy()) for row in rows.cpu()]


@dataclass(frozen=True)
class Split:
    """One task's puzzles of one split, and what keeping them held out and free of repeats took."""

    tokens: torch.Tensor  # (n, length) int64
    shared: int = 0  # puzzles of the selection split met while making the confirmation split: drawn again
    repeated: int = 0  # puzzles repeating an earlier one of the split: drawn again (synthetic) or removed (a dataset)


def without_repeats(rows: torch.Tensor) -> Split:
    """The rows, each kept at its first occurrence, and how many repeats were removed."""
    seen, keep = set(), []
    for i, digest in enumerate(row_hashes(rows)):
        if digest not in seen:
            seen.add(digest)
            keep.append(i)
    return Split(rows[keep], repeated=len(rows) - len(keep))


def check_disjoint(selection: torch.Tensor, confirmation: torch.Tensor, task: str) -> None:
    """Refuse splits that share puzzles (a claim confirmed on its own selection data proves nothing);
    warn about puzzles repeated within the confirmation split."""
    chosen, held_out = set(row_hashes(selection)), row_hashes(confirmation)
    shared = sum(h in chosen for h in held_out)
    if shared:
        raise ValueError(f"task {task}: {shared} of {len(held_out)} confirmation puzzles also appear in the selection split; "
                         "the held-out data is not held out")
    repeated = len(held_out) - len(set(held_out))
    if repeated:
        warnings.warn(f"task {task}: {repeated} of {len(held_out)} confirmation puzzles are duplicates of others", stacklevel=2)


def task_rows(dataset, task: str, start: int, stop: int, length: int | None = None) -> torch.Tensor:
    """(stop - start, length) int64 tokens of rows [start, stop) of a task's split; every row must
    have `length` tokens (given: the layout's; else the first row's), or the row is named."""
    check_task(task)
    if task not in dataset:
        raise KeyError(f"the dataset has no split {task!r} (splits: {', '.join(dataset)})")
    split = dataset[task]
    if len(split) < stop:
        raise ValueError(f"split {task!r} has {len(split)} rows; rows [{start}, {stop}) were asked for")
    rows = split.select(range(start, stop)).with_format("torch")[:]["input_ids"]
    lengths = [len(row) for row in rows]  # a list of tensors when the rows are ragged
    expected = lengths[0] if length is None and lengths else length
    odd = next((i for i, n in enumerate(lengths) if n != expected), None)
    if odd is not None:
        files = [f["filename"] for f in getattr(split, "cache_files", [])]
        where = files[0] if len(files) == 1 else f"split {task!r}"
        raise ValueError(f"{where}: task {task} row {start + odd} has {lengths[odd]} tokens; every puzzle of this "
                         f"layout has {expected}")
    return torch.as_tensor(rows).long()
