"""The walls of a sandbox VM's command, put up inside the guest, then the command exec'd.

The guest agent (``/init``) runs this file as root, chrooted into the VM's root (an overlay
of the read-only root disk), with ``/ember/walls.json`` beside it. It imports only the
standard library and never ember. In order:

1. each read-only path is bound at its own path from the data disk (mounted at
   ``/.ember-ro``), read-only; then the root itself is remounted read-only;
2. new mount and pid namespaces: the process forks, the parent waits and exits with the
   child's status, the child is pid 1 of the new namespace and mounts its own ``/proc``;
3. the child drops every capability from its bounding set, its groups, and becomes ``uid``
   (so its effective, permitted and ambient capabilities go), sets no-new-privileges and
   loads the seccomp filter (the host's, as raw BPF), sets ``rlimits`` and execs ``argv``
   in ``/workspace`` with exactly ``env``.

With ``"executor": true``, ``argv`` is ``python3 -I -S -c SOURCE ARGS...`` of the session
executor (:mod:`ember.sandbox._executor`): instead of a second interpreter start (a second
or more under TCG), ``SOURCE`` runs in this one, walls up, with ``sys.argv`` ``["-c",
*ARGS]`` and ``env`` as the environment its commands get (its ``environment()``).

Whatever fails is one line on stderr and exit status 125, before the command runs.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import resource
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
RO_SOURCE = "/.ember-ro"

_libc = ctypes.CDLL(None, use_errno=True)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None
        ),
        f"mount {target}",
    )


def bind_read_only(paths: list[str]) -> None:
    """Bind each of ``paths`` from the data disk at its own path, read-only."""
    for path in paths:
        source = RO_SOURCE + path
        if os.path.isdir(source):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a"):
                pass
        _mount(source, path, None, MS_BIND)
        _mount("none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if os.path.ismount(RO_SOURCE):
        _check(_libc.umount2(RO_SOURCE.encode(), 2), "umount the data disk")
    _mount("none", "/", None, MS_REMOUNT | MS_RDONLY)


def new_namespaces() -> None:
    """Become pid 1 of new mount and pid namespaces (the parent waits, then exits as the
    child did) with a ``/proc`` of its own."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def drop_privileges(uid: int, seccomp: bytes) -> None:
    """No capability, no group, ``uid``, no new privileges, and the seccomp filter."""
    with open("/proc/sys/kernel/cap_last_cap") as file:
        last = int(file.read())
    for capability in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "drop a capability")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no-new-privileges")
    if seccomp:
        program = ctypes.create_string_buffer(seccomp, len(seccomp))
        fprog = SockFprog(len(seccomp) // 8, ctypes.addressof(program))
        _check(
            _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
            "load the seccomp filter",
        )


def run_executor(source: str, args: list[str], env: dict[str, str]) -> int:
    """Run the session executor's ``source`` here, as ``python3 -c source *args`` would."""
    sys.argv = ["-c", *args]
    os.environ.clear()
    os.environ.update(env)
    namespace: dict[str, Any] = {"__name__": "ember_session_executor"}
    exec(compile(source, "<ember-session>", "exec"), namespace)
    namespace["environment"] = lambda: dict(env)
    return int(namespace["main"](sys.argv))


def main(config: dict[str, Any]) -> int:
    try:
        bind_read_only([str(path) for path in config.get("read_only_paths", [])])
        new_namespaces()
        drop_privileges(int(config["uid"]), base64.b64decode(config.get("seccomp", "")))
        for name, soft, hard in config.get("rlimits", []):
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (soft, hard))
        os.chdir("/workspace")
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        print(f"ember-walls: {exc}", file=sys.stderr)
        return 125
    argv = [str(arg) for arg in config["argv"]]
    env = {str(name): str(value) for name, value in config["env"].items()}
    if config.get("executor") and argv[1:4] == ["-I", "-S", "-c"]:
        return run_executor(argv[4], argv[5:], env)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"{argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126


if __name__ == "__main__":
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "walls.json")) as file:
        sys.exit(main(json.load(file)))
