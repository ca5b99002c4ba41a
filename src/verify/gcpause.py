"""Garbage collection around verify's start-up: paused while it imports and reads the subjects, and
what start-up leaves frozen once.

Importing torch, TransformerLens (with transformers) and SAELens leaves about 500,000 objects that live
as long as the process, and CPython's collector walks every one of them at each full collection.
Measured on `pytest claims/` here: 12 full collections during start-up took 1.5 s (8 while pytest
loaded its plugins, this one's torch import among them, as it was then; 4 while the subjects were read), and pytest's
own five at exit (its unraisable-exception check) another 1.5 s. So:

- `paused()` suspends automatic collection while the plugin reads the session's subjects (torch's
  import among it) and imports what loading them needs (TransformerLens, SAELens: a process that
  runs claims), and while an xdist worker imports torch to set its threads; it leaves the collector
  as it found it;
- `freeze_startup()`, once per process, after a session's subjects are read and only when it has
  some, moves every object alive then into the permanent generation (`gc.freeze`, what CPython
  documents for long-lived start-up state): later collections, pytest's at exit included, walk only
  what the run itself creates. Garbage in cycles that exists at that moment is never collected: the
  start-up's, small and made once.
"""

from __future__ import annotations

import contextlib
import gc

_frozen = False


@contextlib.contextmanager
def paused():
    """No automatic collection inside the block; the collector's state restored after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_startup() -> bool:
    """Move every object alive now into the permanent generation, the first time in this process
    (an in-process pytest session inside another must not freeze its predecessors' garbage)."""
    global _frozen
    if _frozen:
        return False
    gc.freeze()
    _frozen = True
    return True
