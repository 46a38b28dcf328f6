"""What every fake server shares: an ASGI app served by uvicorn in a daemon thread on
127.0.0.1, on a free port the first time and the same port after a :meth:`stop`, so clients
reconnect unchanged (the circuit-breaker and health tests stop and start their upstream)."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn

__all__ = ["Fault", "FaultState", "ThreadedFakeServer"]


@dataclass
class Fault:
    """What to do to one coming call: answer ``status`` (``None``: answer normally) after
    ``stall_s`` seconds, with ``Retry-After`` when ``retry_after_s`` is set."""

    status: int | None
    stall_s: float = 0.0
    retry_after_s: float | None = None
    message: str = "injected failure"


@dataclass
class FaultState:
    """A fake's queued faults, queued stream breaks (after how many chunks) and the calls it
    received, oldest first."""

    faults: deque[Fault] = field(default_factory=deque)
    breaks: deque[int] = field(default_factory=deque)
    calls: list[Any] = field(default_factory=list)


class ThreadedFakeServer:
    """Base of the fakes: subclasses provide :meth:`_asgi` and call :meth:`_init_server`."""

    port: int
    lifespan: str = "off"
    """uvicorn's ``lifespan`` setting: ``"on"`` runs the app's start-up and shut-down."""
    _stopping: threading.Event
    _server: uvicorn.Server | None
    _thread: threading.Thread | None

    def _init_server(self, name: str) -> None:
        self._name = name
        self.port = 0
        self._stopping = threading.Event()
        self._server = None
        self._thread = None

    def _asgi(self) -> Any:
        """The app to serve (built anew on every start, or the same one)."""
        raise NotImplementedError

    def start(self) -> None:
        """Listen (again) and wait until the server accepts requests."""
        if self._thread is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._stopping.clear()
        config = uvicorn.Config(
            self._asgi(), log_level="warning", lifespan=self.lifespan, timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self._name} did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop listening (connections are refused until :meth:`start`); stalls end at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
