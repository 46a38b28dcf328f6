"""File tools over the job's workspace: ``read_file``, ``write_file``, ``list_files``.

Every path goes through :func:`~ember.agents.paths.confine`; files are opened with
``O_NOFOLLOW`` and ``O_NONBLOCK`` and must be regular files (a FIFO or device a command left
behind is refused, never waited on). Reads stop at ``max_read_bytes`` (the result says it was
cut), writes over ``max_write_bytes`` are refused. The blocking work runs in a thread.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from ember.agents.paths import confine, relative_to_root
from ember.agents.tools import Tool, ToolArgs
from ember.errors import BadRequest, PayloadTooLarge, PolicyDenied

__all__ = ["FileArgs", "ListArgs", "WorkspaceFiles", "WriteArgs", "file_tools"]

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_ENTRIES = 1000
"""The most entries one ``list_files`` returns."""


class FileArgs(ToolArgs):
    path: str = Field(max_length=4096, description="A path relative to the workspace.")
    offset: int = Field(default=0, ge=0, description="The byte to start reading at.")


class WriteArgs(ToolArgs):
    path: str = Field(max_length=4096, description="A path relative to the workspace.")
    content: str = Field(description="The text to write (UTF-8).")
    append: bool = Field(default=False, description="Append instead of replacing the file.")


class ListArgs(ToolArgs):
    path: str = Field(default=".", max_length=4096, description="A directory in the workspace.")
    recursive: bool = Field(default=False, description="Also list what is below.")


def _open(path: Path, flags: int, shown: str) -> int:
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        raise BadRequest(f"no file {shown!r} in the workspace") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO nobody reads
            raise PolicyDenied(f"{shown!r} is not a regular file", extra={"path": shown}) from None
        raise BadRequest(f"cannot open {shown!r}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PolicyDenied(f"{shown!r} is not a regular file", extra={"path": shown})
    return fd


@dataclass(frozen=True)
class WorkspaceFiles:
    """Reads, writes and lists files under ``root`` within the given limits."""

    root: Path
    max_read_bytes: int = 256 * 1024
    max_write_bytes: int = 1024 * 1024

    def read(self, path: str, offset: int = 0) -> dict[str, Any]:
        """Up to ``max_read_bytes`` of the file from ``offset``, as text.

        :raises PolicyDenied: the path leaves the workspace or is not a regular file.
        :raises BadRequest: there is no such file.
        """
        target = confine(self.root, path)
        shown = relative_to_root(self.root, target)
        fd = _open(target, _READ, shown)
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(offset)
            data = handle.read(self.max_read_bytes + 1)
        truncated = len(data) > self.max_read_bytes
        data = data[: self.max_read_bytes]
        return {
            "path": shown,
            "size": size,
            "offset": offset,
            "content": data.decode("utf-8", errors="replace"),
            "truncated": truncated,
        }

    def write(self, path: str, content: str, append: bool = False) -> dict[str, Any]:
        """Write (or append) ``content``; parent directories are made.

        :raises PolicyDenied: the path leaves the workspace or is not a regular file.
        :raises PayloadTooLarge: ``content`` is over ``max_write_bytes``.
        """
        data = content.encode()
        if len(data) > self.max_write_bytes:
            raise PayloadTooLarge(
                f"{len(data)} bytes is over the write limit of {self.max_write_bytes}"
            )
        target = confine(self.root, path)
        shown = relative_to_root(self.root, target)
        if target == self.root.resolve():
            raise BadRequest("give a file name, not the workspace itself")
        target.parent.mkdir(parents=True, exist_ok=True)
        confine(self.root, path)  # a parent made above must not have been swapped for a link
        fd = _open(target, _WRITE | (os.O_APPEND if append else 0), shown)
        with os.fdopen(fd, "wb") as handle:
            if not append:
                handle.truncate(0)
            handle.write(data)
        return {"path": shown, "bytes": len(data), "appended": append}

    def list(self, path: str = ".", recursive: bool = False) -> dict[str, Any]:
        """The entries of a directory (symlinks listed, never followed), at most
        :data:`MAX_ENTRIES`.

        :raises PolicyDenied: the path leaves the workspace.
        :raises BadRequest: it is not a directory.
        """
        target = confine(self.root, path)
        if not target.is_dir():
            raise BadRequest(f"{path!r} is not a directory in the workspace")
        root = self.root.resolve()
        entries: list[dict[str, Any]] = []
        pending = [target]
        while pending and len(entries) < MAX_ENTRIES:
            with os.scandir(pending.pop(0)) as found:
                for entry in sorted(found, key=lambda e: e.name):
                    kind = _kind(entry)
                    item: dict[str, Any] = {"path": Path(entry.path).relative_to(root).as_posix()}
                    item["type"] = kind
                    if kind == "file":
                        item["size"] = entry.stat(follow_symlinks=False).st_size
                    entries.append(item)
                    if recursive and kind == "dir":
                        pending.append(Path(entry.path))
        truncated = len(entries) >= MAX_ENTRIES
        return {
            "path": relative_to_root(self.root, target),
            "entries": entries[:MAX_ENTRIES],
            "truncated": truncated,
        }


def _kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return "other"


def file_tools(files: WorkspaceFiles) -> list[Tool[Any]]:
    """``read_file``, ``write_file`` and ``list_files`` over ``files``."""

    async def read_file(args: FileArgs) -> dict[str, Any]:
        return await asyncio.to_thread(files.read, args.path, args.offset)

    async def write_file(args: WriteArgs) -> dict[str, Any]:
        return await asyncio.to_thread(files.write, args.path, args.content, args.append)

    async def list_files(args: ListArgs) -> dict[str, Any]:
        return await asyncio.to_thread(files.list, args.path, args.recursive)

    return [
        Tool(
            "read_file",
            "Read a text file in the workspace (paths relative to it; the result is cut at a "
            "size limit, read on with `offset`).",
            FileArgs,
            read_file,
        ),
        Tool(
            "write_file",
            "Write a text file in the workspace (made with its directories; replaces it "
            "unless `append`).",
            WriteArgs,
            write_file,
        ),
        Tool(
            "list_files",
            "List a directory of the workspace: each entry's path, type and size.",
            ListArgs,
            list_files,
        ),
    ]
