"""Puzzle data per task, through `datasets`: a hub dataset, a save_to_disk folder or parquet files.

The published data (`tommyp111/culture-puzzles-1M-partitioned`) has one split per task, with
`input_ids` (405 int32) and `label` columns. Selection and confirmation are disjoint row ranges.
"""

from __future__ import annotations

from pathlib import Path

import torch

from verify import sources

TASKS = ("contact", "corners", "detect", "frame", "grow", "half_fill", "replace_color", "translate")
HF_DATASETS = "hf://datasets/"


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    return task


def open_dataset(path: str, base: Path):
    """A DatasetDict (or IterableDatasetDict) of task splits. Raises SourceUnavailable offline."""
    import datasets

    if path.startswith(HF_DATASETS):
        name, _, revision = path[len(HF_DATASETS) :].partition("@")
        if not sources.hub_reachable():
            try:  # a copy already in the datasets cache still loads offline
                return datasets.load_dataset(name, revision=revision or None, download_mode="reuse_cache_if_exists")
            except Exception:  # noqa: BLE001 - any failure here means: not in the cache
                raise sources.SourceUnavailable(f"not available offline: dataset {name}") from None
        return datasets.load_dataset(name, revision=revision or None)
    folder = sources.local_path(path, base)
    if (folder / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(folder))
    files = {task: sorted(str(p) for p in folder.rglob(f"{task}*.parquet")) for task in TASKS}
    files = {task: paths for task, paths in files.items() if paths}
    if not files:
        raise FileNotFoundError(f"{folder}: neither a save_to_disk folder (dataset_dict.json) nor parquet files named <task>*.parquet")
    return datasets.load_dataset("parquet", data_files=files)


def task_rows(dataset, task: str, start: int, stop: int) -> torch.Tensor:
    """(stop - start, length) int64 tokens of rows [start, stop) of a task's split."""
    check_task(task)
    if task not in dataset:
        raise KeyError(f"the dataset has no split {task!r} (splits: {', '.join(dataset)})")
    split = dataset[task]
    if len(split) < stop:
        raise ValueError(f"split {task!r} has {len(split)} rows; rows [{start}, {stop}) were asked for")
    rows = split.select(range(start, stop)).with_format("torch")[:]["input_ids"]
    return torch.as_tensor(rows).long()
