"""Paths a model names, confined to the job's workspace.

:func:`confine` resolves a user-given path against the workspace root and refuses anything
that lands outside it: an absolute path elsewhere, a ``..`` escape, a symlink (at the end or
in a parent directory) that points out. Absolute paths under :data:`~ember.sandbox.protocol.
WORKDIR` (``/workspace``, where the sandbox shows the workspace) mean the same place in the
workspace, so a model can use the paths its commands print.

The check is "resolve, then check it is inside"; the file tools then open the resolved path
with ``O_NOFOLLOW`` and refuse anything but a regular file, so a symlink swapped in at the
last step, a FIFO or a device cannot be used to escape or to block ember.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ember.errors import PolicyDenied
from ember.sandbox.protocol import WORKDIR

__all__ = ["confine", "relative_to_root"]


def _denied(path: str, why: str) -> PolicyDenied:
    return PolicyDenied(f"path {path!r} {why}", extra={"path": path})


def confine(root: Path, path: str) -> Path:
    """The real path ``path`` names inside ``root`` (which need not exist below ``root``).

    :raises PolicyDenied: the path is empty of meaning (a NUL byte), absolute outside the
        workspace, or resolves (``..``, symlinks) to a place outside ``root``.
    """
    if "\x00" in path:
        raise _denied(path, "contains a NUL byte")
    base = root.resolve(strict=True)
    given = PurePosixPath(path) if path else PurePosixPath(".")
    if given.is_absolute():
        workdir = PurePosixPath(WORKDIR)
        if given == workdir or workdir in given.parents:
            candidate = base / given.relative_to(workdir)
        else:
            candidate = Path(given)
    else:
        candidate = base / given
    resolved = Path(os.path.realpath(candidate))
    if resolved != base and base not in resolved.parents:
        raise _denied(path, "is outside the workspace")
    return resolved


def relative_to_root(root: Path, path: Path) -> str:
    """``path`` (already confined) as the workspace-relative text the model sees."""
    relative = path.relative_to(root.resolve())
    return "." if relative == Path(".") else relative.as_posix()
