"""The executor of a sandbox session: pid 1 of one long-lived sandbox, one spawn per command.

:mod:`ember.sandbox.session` runs this file's source as bubblewrap's inner command, exactly
where a one-shot run has its ``sh`` init: ``/usr/bin/python3 -I -S -c SOURCE ember-session
CONFIG``. It imports only the standard library and never ember. ``CONFIG`` is JSON:
``{"rlimits": [[NAME, SOFT, HARD], ...]}`` (``NAME`` as in ``resource.RLIMIT_NAME``), and
``"renew_s"`` optionally (the server's CPU seconds after which it is renewed; by default
half its ``RLIMIT_CPU``).

**Wire format.** A *message* is a JSON object framed as a 4-byte big-endian length and its
UTF-8 bytes, followed by as many raw frames (length, bytes: binary safe) as its ``blobs``
field says. Over the executor's stdin (from ember) and stdout (to ember):

- executor → ember, once: ``{"ready": 1}`` (or ``{"error": TEXT}``, then it exits);
- ember → executor: ``{"op": "run", "id": N, "argv": [...], "wall_s": S,
  "output_bytes": B, "stdin": BOOL, "blobs": 1}`` and the stdin bytes;
- ember → executor: ``{"op": "stop", "id": N}``: end run ``N`` now (ignored unless it runs);
- executor → ember, once per run: ``{"id": N, "status": CODE, "timed_out": BOOL,
  "stopped": BOOL, "clean": BOOL, "stdout_total": n, "stderr_total": n, "blobs": 2}``
  and the kept stdout and stderr (at most ``output_bytes`` each). ``status`` is the exit
  code, or ``128 + N`` for signal ``N`` (as a shell reports it); ``clean`` says nothing but
  the executor was left when the run ended.

A message it cannot parse, a second ``run`` while one runs, or the end of its stdin ends
the executor, and with it (pid 1) every process of the sandbox.

**Two processes.** The *keeper* is pid 1: it holds no rlimit, forks the *server* and reaps;
when the server exits it kills whatever is left and exits, so the sandbox ends (but when the
server asks to be renewed: its own CPU time counts against ``cpu_s``, so after using half of
it, between two runs, it exits with :data:`RENEW` and the keeper forks a fresh one; nothing
else changes). The server sets the session's rlimits on itself, so every command inherits
them, makes itself the commands' child subreaper, and starts each command with
``posix_spawn`` (a vfork: no copy of its memory): the command's own stdin (``/dev/null`` or
a pipe), stdout and stderr pipes, default signal dispositions, an empty signal mask, its
own session and process group; right after it starts, ``oom_score_adj`` 1000 (the
kernel's OOM killer takes commands, and what they start from then on, before the executor;
a command may lower its own back to 0, and then competes with the executor on size).
``argv[0]`` is looked up on ``PATH`` (not found: 127, not executable: 126, as a shell; a
file without ``#!`` runs under ``/bin/sh``). The server feeds
stdin, keeps the first ``output_bytes`` of stdout and of stderr and drains the rest, and waits
for the command to exit, its ``wall_s`` to run out or a ``stop``. Then it SIGKILLs every
other process of the pid namespace but the keeper (``kill(-1)`` reaches all of them,
whatever session or process group they made), reaps them (orphans come to it, the
subreaper), reads the pipes to their end and answers. So no process of a command outlives
its run, and the next command starts in a namespace holding only the executor.

**Its own safety.** The keeper, as pid 1, gets no signal from inside the namespace that it
does not handle (it handles none). The server ignores every signal it can, so a command can
only SIGKILL or SIGSTOP it: killed, the keeper ends the sandbox; stopped, ember's own
deadline does. Neither is dumpable, so a command (no capabilities) cannot open their
``/proc/PID/mem``, ``environ`` or ``fd``. Both refuse to run anywhere but as (a child of)
pid 1 of a new pid namespace: ``kill(-1)`` anywhere else would reach every process of the
user on the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import select
import signal
import stat
import struct
import sys
import time
from typing import Any

LENGTH = struct.Struct(">I")
MAX_HEADER = 1 << 20
MAX_BLOB = 1 << 30
MAX_BLOBS = 4
CHUNK = 1 << 16
KILL_WAIT_S = 10.0
POLL_CAP_MS = 100
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
RENEW = 75
"""The server's exit status that asks the keeper for a fresh server."""
LIMITS_FAILED = "ember-sandbox: cannot set the limits"
AS_HEADROOM = 32 << 20
"""An address-space limit must leave the server this much above what it maps already."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
IGNORED = (
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGTERM",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGVTALRM",
    "SIGPROF",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGPIPE",
)
"""What the server ignores, and each command gets back at the default."""

_libc = ctypes.CDLL(None, use_errno=True)
_inside = False
"""Set once :func:`main` knows it runs as pid 1 of a new pid namespace."""


class ProtocolError(Exception):
    """What came from ember cannot be understood."""


Message = tuple[dict[str, Any], list[bytes]]


class Inbox:
    """Messages from ember, taken from what arrives on fd 0."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False

    def fill(self) -> None:
        chunk = os.read(0, CHUNK)
        if chunk:
            self.buffer += chunk
        else:
            self.closed = True

    def take(self) -> Message | None:
        """The next whole message, or ``None`` until it has arrived."""
        buffer, offset = self.buffer, 0

        def frame(limit: int) -> tuple[int, int] | None:
            if len(buffer) < offset + LENGTH.size:
                return None
            (size,) = LENGTH.unpack_from(buffer, offset)
            if size > limit:
                raise ProtocolError(f"a frame of {size} bytes")
            start = offset + LENGTH.size
            return (start, start + size) if len(buffer) >= start + size else None

        found = frame(MAX_HEADER)
        if found is None:
            return None
        try:
            header = json.loads(bytes(buffer[found[0] : found[1]]))
        except ValueError as exc:
            raise ProtocolError(f"not JSON: {exc}") from exc
        if not isinstance(header, dict):
            raise ProtocolError("a message is not an object")
        count = header.get("blobs", 0)
        if not isinstance(count, int) or not 0 <= count <= MAX_BLOBS:
            raise ProtocolError("bad blob count")
        offset = found[1]
        spans = []
        for _ in range(count):
            found = frame(MAX_BLOB)
            if found is None:
                return None
            spans.append(found)
            offset = found[1]
        blobs = [bytes(buffer[start:end]) for start, end in spans]
        del buffer[:offset]
        return header, blobs


def send(header: dict[str, Any], *blobs: bytes) -> None:
    data = json.dumps({**header, "blobs": len(blobs)}, separators=(",", ":")).encode()
    parts = [LENGTH.pack(len(data)), data]
    for blob in blobs:
        parts += [LENGTH.pack(len(blob)), blob]
    view = memoryview(b"".join(parts))
    while view:
        view = view[os.write(1, view) :]


def reap(statuses: dict[int, int]) -> bool:
    """Reap every exited child (noting its status); whether any child is left."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        except InterruptedError:
            continue
        if pid == 0:
            return True
        statuses[pid] = status


def kill_all(statuses: dict[int, int]) -> bool:
    """SIGKILL every process of the namespace but pid 1 and this one, until none is left;
    whether that happened within :data:`KILL_WAIT_S`. Only ever inside the sandbox."""
    if not _inside:
        raise SystemExit("ember-session: not in its own pid namespace; refusing kill(-1)")
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        with contextlib.suppress(ProcessLookupError):  # ESRCH: none left (maybe zombies)
            os.kill(-1, signal.SIGKILL)
        if not reap(statuses):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)


def code_of(status: int | None) -> int | None:
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server:
    """Reads requests and runs each command (see the module)."""

    def __init__(
        self, env: dict[str, str], rlimits: list[tuple[int, int, int]], renew_s: float | None
    ) -> None:
        self.env = env
        self.rlimits = rlimits
        self.inbox = Inbox()
        self.reset = [getattr(signal, name) for name in IGNORED]
        self.path = env.get("PATH", DEFAULT_PATH).split(":")
        self.budget_s = float("inf") if renew_s is None else renew_s
        self.runs = 0

    def main(self) -> int:
        for signum in self.reset:
            signal.signal(signum, signal.SIG_IGN)
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        try:
            for which, soft, hard in self.rlimits:
                resource.setrlimit(which, (soft, hard))
                if which == resource.RLIMIT_CPU:
                    self.budget_s = min(self.budget_s, soft / 2)
        except (OSError, ValueError) as exc:
            print(f"{LIMITS_FAILED}: {exc}", file=sys.stderr)
            return 125
        try:
            return self.serve()
        except ProtocolError as exc:
            print(f"ember-session: {exc}", file=sys.stderr)
            return 2

    def serve(self) -> int:
        while True:
            message = self.inbox.take()
            if message is None:
                if self.runs and not self.inbox.buffer and cpu_used() > self.budget_s:
                    return RENEW  # between runs, nothing half read: a fresh server goes on
                select.select([0], [], [])
                self.inbox.fill()
                if self.inbox.closed:
                    return 0
                continue
            header, blobs = message
            if header.get("op") == "run":
                self.run(header, blobs)
                self.runs += 1
            elif header.get("op") != "stop":  # a stop for a run that already ended
                raise ProtocolError(f"unknown op {header.get('op')!r}")

    def find(self, name: str) -> str:
        """``name`` on ``PATH``, as ``execvp`` finds it.

        :raises OSError: ``ENOENT`` nowhere, ``EACCES`` found but not executable.
        """
        if "/" in name:
            return name
        denied = ""
        for directory in self.path:
            candidate = os.path.join(directory or ".", name)
            try:
                found = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(found.st_mode) and os.access(candidate, os.X_OK):
                return candidate
            denied = denied or candidate
        if denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), denied)
        raise FileNotFoundError(errno.ENOENT, "not found", name)

    def spawn(self, argv: list[str], stdin: int, out_w: int, err_w: int) -> int:
        """Start ``argv`` (see the module); its pid.

        :raises OSError: it cannot be started.
        """
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)
            if stdin < 0
            else (os.POSIX_SPAWN_DUP2, stdin, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        path = self.find(argv[0])
        options: dict[str, Any] = {
            "file_actions": actions,
            "setsid": True,
            "setsigdef": self.reset,
            "setsigmask": (),
        }
        try:
            pid = os.posix_spawn(path, argv, self.env, **options)
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise
            pid = os.posix_spawn("/bin/sh", ["/bin/sh", path, *argv[1:]], self.env, **options)
        with contextlib.suppress(OSError):  # the OOM killer's first choice: not the executor
            adjust = os.open(f"/proc/{pid}/oom_score_adj", os.O_WRONLY)
            os.write(adjust, b"1000")
            os.close(adjust)
        return pid

    def run(self, header: dict[str, Any], blobs: list[bytes]) -> None:
        ident, argv = header.get("id"), header.get("argv")
        wall_s, cap = header.get("wall_s"), header.get("output_bytes")
        if not (
            isinstance(argv, list)
            and argv
            and all(isinstance(a, str) and "\0" not in a for a in argv)
            and isinstance(wall_s, (int, float))
            and wall_s > 0
            and isinstance(cap, int)
            and cap >= 0
            and len(blobs) == 1
        ):
            raise ProtocolError("a malformed run request")
        deadline = time.monotonic() + wall_s
        stdin = blobs[0] if header.get("stdin") else None
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        in_r, in_w = os.pipe2(os.O_CLOEXEC) if stdin is not None else (-1, -1)
        try:
            pid = self.spawn(argv, in_r, out_w, err_w)
        except OSError as exc:
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
            reason = "not found" if missing else exc.strerror
            message = f"{argv[0]}: {reason}\n".encode(errors="replace")
            reply = {"id": ident, "status": 127 if missing else 126, "timed_out": False}
            reply |= {"stopped": False, "clean": True, "stdout_total": 0}
            send({**reply, "stderr_total": len(message)}, b"", message[:cap])
            return
        finally:
            for fd in (in_r, out_w, err_w):
                if fd >= 0:
                    os.close(fd)
        if in_w >= 0:
            os.set_blocking(in_w, False)
        run = Run(pid, out_r, err_r, in_w, stdin or b"", cap)
        self.control(run, ident, read=False)  # a stop read along with the request
        run.wait(self, ident, deadline)
        send(
            {
                "id": ident,
                "status": code_of(run.statuses.get(pid)),
                "timed_out": run.timed_out,
                "stopped": run.stopped,
                "clean": run.clean,
                "stdout_total": run.totals[out_r],
                "stderr_total": run.totals[err_r],
            },
            bytes(run.kept[out_r]),
            bytes(run.kept[err_r]),
        )

    def control(self, run: Run, ident: object, *, read: bool = True) -> None:
        """Take what ember sent while ``run`` runs (``read``: read fd 0 first; else only
        what is already buffered): a stop for it, or the end of ember."""
        if read:
            self.inbox.fill()
            if self.inbox.closed:
                run.end()
                raise SystemExit(0)
        while (message := self.inbox.take()) is not None:
            header = message[0]
            if header.get("op") != "stop":
                raise ProtocolError("a request while a command runs")
            if header.get("id") == ident and not run.ended:
                run.stopped = True
                run.end()


class Run:
    """One command, from its start to the end of its output."""

    def __init__(self, pid: int, out_r: int, err_r: int, in_w: int, stdin: bytes, cap: int):
        self.pid = pid
        self.cap = cap
        self.statuses: dict[int, int] = {}
        self.kept = {out_r: bytearray(), err_r: bytearray()}
        self.totals = {out_r: 0, err_r: 0}
        self.outputs = {out_r, err_r}
        self.in_w = in_w
        self.stdin = memoryview(stdin)
        self.timed_out = self.stopped = self.ended = False
        self.clean = True
        self.pidfd = -1
        with contextlib.suppress(AttributeError, OSError):  # else the poll's cap wakes us
            self.pidfd = os.pidfd_open(pid)
        if in_w >= 0 and not stdin:
            self.close_stdin()

    def close_stdin(self) -> None:
        if self.in_w >= 0:
            os.close(self.in_w)
            self.in_w = -1

    def end(self) -> None:
        """The command is over: kill all that is left of it."""
        if not self.ended:
            self.ended = True
            self.close_stdin()
            self.clean = kill_all(self.statuses)

    def wait(self, server: Server, ident: object, deadline: float) -> None:
        drain_until: float | None = None
        try:
            while True:
                if not self.ended:
                    if self.pid in self.statuses:
                        self.end()
                    elif time.monotonic() >= deadline:
                        self.timed_out = True
                        self.end()
                if self.ended:
                    if not self.outputs:
                        break
                    if drain_until is None:
                        drain_until = time.monotonic() + KILL_WAIT_S
                    elif time.monotonic() > drain_until:
                        self.clean = False  # a writer that would not die
                        break
                    limit = drain_until
                else:
                    limit = deadline
                self.poll(server, ident, limit)
                if not self.ended:
                    reap(self.statuses)  # the command, and orphans that already exited
        finally:
            for fd in (*self.kept, self.pidfd):
                if fd >= 0:
                    os.close(fd)
            self.close_stdin()

    def poll(self, server: Server, ident: object, limit: float) -> None:
        poller = select.poll()
        for fd in self.outputs:
            poller.register(fd, select.POLLIN)
        poller.register(0, select.POLLIN)
        if self.in_w >= 0:
            poller.register(self.in_w, select.POLLOUT)
        if self.pidfd >= 0 and not self.ended:
            poller.register(self.pidfd, select.POLLIN)
        wait_ms = max(0, min(POLL_CAP_MS, int((limit - time.monotonic()) * 1000) + 1))
        for fd, _ in poller.poll(wait_ms):
            if fd == 0:
                server.control(self, ident)
            elif fd == self.in_w:
                self.feed()
            elif fd in self.outputs:
                self.read(fd)

    def feed(self) -> None:
        try:
            written = os.write(self.in_w, self.stdin[:CHUNK])
        except BlockingIOError:
            return
        except OSError:  # the command closed its stdin (EPIPE): the rest is not wanted
            self.close_stdin()
            return
        self.stdin = self.stdin[written:]
        if not self.stdin:
            self.close_stdin()

    def read(self, fd: int) -> None:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            self.outputs.discard(fd)
            return
        self.totals[fd] += len(chunk)
        room = self.cap - len(self.kept[fd])
        if room > 0:
            self.kept[fd] += chunk[:room]


def environment() -> dict[str, str]:
    """The environment bubblewrap gave us, as given (Python may add to ``os.environ``)."""
    with open("/proc/self/environ", "rb") as source:
        raw = source.read()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {os.fsdecode(name): os.fsdecode(value) for name, _, value in pairs}


def mapped_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def rlimits_of(config: dict[str, Any]) -> list[tuple[int, int, int]]:
    """The rlimits the server sets on itself (and so on every command).

    :raises ValueError: one is above what the executor may set, or an address-space limit
        leaves the server no room to work.
    """
    found = []
    for name, soft, hard in config["rlimits"]:
        which = getattr(resource, f"RLIMIT_{name}")
        _, ceiling = resource.getrlimit(which)
        if ceiling != resource.RLIM_INFINITY and hard > ceiling:
            raise ValueError(f"RLIMIT_{name} {hard} is above the hard limit {ceiling}")
        if name == "AS" and soft < mapped_bytes() + AS_HEADROOM:
            raise ValueError(f"RLIMIT_AS {soft} leaves the session's executor no room")
        found.append((which, int(soft), int(hard)))
    return found


def keep(env: dict[str, str], config: dict[str, Any]) -> int:
    """Pid 1's work: run servers (a fresh one on :data:`RENEW`), then end everything."""
    rlimits, renew_s = rlimits_of(config), config.get("renew_s")
    while True:
        server = os.fork()
        if server == 0:
            code = 2
            try:
                code = Server(env, rlimits, renew_s).main()
            finally:
                os._exit(code)
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                pid, status = server, 0
            if pid == server:
                break
        if os.waitstatus_to_exitcode(status) != RENEW:
            return 0


def main(argv: list[str]) -> int:
    global _inside
    if os.getpid() != 1:  # its clean-up is kill(-1): only ever inside its own pid namespace
        print("ember-session: must run as pid 1 of a new pid namespace", file=sys.stderr)
        return 2
    _inside = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = environment()
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    try:
        config = json.loads(argv[-1])
        rlimits_of(config)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        send({"error": f"{LIMITS_FAILED}: {exc}"})
        return 125
    send({"ready": 1})
    try:
        return keep(env, config)
    finally:
        kill_all({})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
