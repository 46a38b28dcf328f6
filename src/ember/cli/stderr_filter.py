"""Drop known false alarms that libraries write straight to file descriptor 2.

Ray's core worker logs, in C++, an error line whenever an actor whose constructor arguments
sit in the object store may restart. Ray Data's own actor pools always qualify (it puts each
stage's function in the object store and gives its actors ``max_restarts=-1``), so every
healthy ``ember ingest --bulk`` printed that line (upstream: ray-project/ray#53727), and so
does ``ember up`` when it starts the job dispatcher; the line stays in the driver's log file in
Ray's log folder (``python-core-driver-*.log``). Python's ``logging`` cannot reach a C++
logger, so :func:`dropping` filters the descriptor itself: every other byte written to stderr
passes through unchanged, in order.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["RAY_DATA_RESTART_WARNING", "dropping"]

RAY_DATA_RESTART_WARNING = "has constructor arguments in the object store and max_restarts > 0"
"""The core worker's line about restartable actors with object-store arguments."""


@contextmanager
def dropping(patterns: Sequence[str]) -> Iterator[None]:
    """Within the block, lines written to stderr (fd 2, by any code in this process) that
    contain one of ``patterns`` are dropped; the rest reach the real stderr. Restored, and
    everything written flushed through, on the way out."""
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not any(p.encode() in line for p in patterns):
                    os.write(real, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        thread.join(timeout=5)
        os.close(real)
