"""The pipes between ember and one bubblewrap process tree: bubblewrap's status documents,
and the command's stdin, stdout and stderr."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

__all__ = ["OutputCapture", "StatusPipe", "feed"]

STATUS_LIMIT = 64 * 1024


class StatusPipe:
    """The pipe bubblewrap writes ``--json-status-fd`` documents to; read without blocking."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.read_fd, False)
        self._data = b""
        self._open = True

    def close_write_end(self) -> None:
        """Close our copy of the write end once the child has its own."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def poll(self) -> None:
        """Take in what has been written so far."""
        while self._open and len(self._data) < STATUS_LIMIT:
            try:
                chunk = os.read(self.read_fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._open = False
                return
            self._data += chunk

    def _field(self, name: str) -> int | None:
        found: int | None = None
        for line in self._data.splitlines():
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict) and isinstance(document.get(name), int):
                found = document[name]
        return found

    @property
    def child_pid(self) -> int | None:
        """The host pid of the namespace's init, once bubblewrap has made it."""
        return self._field("child-pid")

    @property
    def pid_namespace(self) -> int | None:
        """The inode number of the sandbox's pid namespace."""
        return self._field("pid-namespace")

    @property
    def exit_code(self) -> int | None:
        """The command's status as bubblewrap reports it (``128 + N`` for signal ``N``);
        ``None`` when the command never ran (set-up failed) or its init was killed."""
        return self._field("exit-code")

    def close(self) -> None:
        self.close_write_end()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


class OutputCapture:
    """Keeps the first ``limit`` bytes of a stream, and drains (and counts) the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: list[bytes] = []
        self._kept = 0
        self.total = 0

    @property
    def truncated(self) -> bool:
        return self.total > self._kept

    def value(self) -> bytes:
        return b"".join(self._chunks)

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(64 * 1024):
            self.total += len(chunk)
            room = self.limit - self._kept
            if room > 0:
                kept = chunk[:room]
                self._chunks.append(kept)
                self._kept += len(kept)


async def feed(pipe: asyncio.StreamWriter | None, data: bytes) -> None:
    """Write ``data`` to the command's stdin and close it; a command that stops reading (or
    ends) is not an error."""
    if pipe is None:
        return
    try:
        if data:
            pipe.write(data)
            await pipe.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()
