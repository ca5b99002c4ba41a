"""The workers of one `pytest -n N` run share the machine's cores, and hand theirs on when done.

Each xdist worker runs torch on its share of the cores: cores // (workers still busy) intra-op
threads, at least one. A worker is busy from its start until it has run its last test, and says so
by keeping a file named after itself in a folder of the run (named by xdist's testrunuid, in the
temporary folder). Before each test, at each stage (verify.timing) and before each batch of a
forward (`timing.steps`) a worker counts the files and takes its share, so the last worker still
measuring runs on every core instead of one.

Why: xdist hands whole subjects to workers (loadgroup), so one worker is often left alone with the
longest subject while the others have finished. With a fixed share it ran on its one thread and left
the other core idle.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class CoreShare:
    """One worker's place among the busy workers of a run."""

    def __init__(self, run: str, worker: str, cores: int) -> None:
        if not run.isalnum() or not worker.isalnum():  # names of a folder and a file, nothing else
            raise ValueError(f"run {run!r} and worker {worker!r} must be letters and digits")
        self.folder = Path(tempfile.gettempdir()) / f"verify-workers-{run}"
        self.folder.mkdir(exist_ok=True)
        self.mine = self.folder / worker
        self.mine.touch()
        self.cores = cores
        self.threads: int | None = None  # what this worker last set

    def busy(self) -> int:
        """Workers of the run still busy (this one at least)."""
        try:
            with os.scandir(self.folder) as entries:
                return max(1, sum(1 for _ in entries))
        except OSError:  # the folder was removed under the run (a temp cleaner): a thread count is no reason to fail
            return 1

    def share(self) -> int:
        return max(1, self.cores // self.busy())

    def refresh(self) -> None:
        """Set torch's intra-op threads to this worker's current share (only when it changed)."""
        import torch

        threads = self.share()
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads

    def leave(self) -> None:
        """This worker has no more work: its cores go to the others at their next refresh."""
        self.mine.unlink(missing_ok=True)
        try:
            self.folder.rmdir()  # the last one out removes the folder
        except OSError:
            pass  # others are still busy
