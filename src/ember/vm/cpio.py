"""A writer of ``newc`` cpio archives, the format the kernel unpacks as an initramfs.

Entries are written in the order given, owned by root, with fixed times, so the same entries
always make the same bytes. Archives may be concatenated (each ends with its own trailer):
the kernel unpacks them one after another, later entries replacing earlier ones.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Entry", "archive", "directory", "regular", "symlink"]

_MAGIC = b"070701"


@dataclass(frozen=True)
class Entry:
    """One file of the archive: its path (relative, no leading ``/``), mode and content (a
    symlink's content is its target)."""

    path: str
    mode: int
    data: bytes = b""


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | mode)


def regular(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | mode, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def archive(entries: Iterable[Entry]) -> bytes:
    """The ``newc`` archive of ``entries``, trailer included.

    :raises ValueError: a path is empty, absolute or holds a NUL byte.
    """
    out = bytearray()
    for inode, entry in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        if not entry.path or entry.path.startswith("/") or "\0" in entry.path:
            raise ValueError(f"bad cpio path {entry.path!r}")
        name = entry.path.encode() + b"\0"
        fields = (inode, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, 0, 0, len(name), 0)
        out += _MAGIC + b"".join(b"%08X" % value for value in fields) + name
        out += b"\0" * (-len(out) % 4)
        out += entry.data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)
