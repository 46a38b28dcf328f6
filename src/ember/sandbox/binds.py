"""Read-only binds: which host paths a caller may show a sandboxed command, at the same path.

A command may be given ``read_only_paths`` (an MCP server written in Python needs its
interpreter and its packages, say). Each entry is a host directory or file, bound read-only
at the same path inside the sandbox. :func:`check_syntax` is what can be checked without the
host (a profile is checked with it when it is saved); :func:`check_read_only_paths` checks
the host as well, right before a command runs. An entry is refused (``BadRequest``) when it:

- is not an absolute, canonical path (``/a/b``: no ``.`` or ``..`` part, no ``//``, no
  trailing ``/``, no NUL);
- is one of :data:`WHOLE_TREES` (``/``, ``/tmp``, ``/var``, ``/home``, ``/root``, the
  sandbox's own mount points ``/usr``, ``/bin``, ``/lib*``, ``/workspace``, ...): a path
  below them may be bound, the tree itself not;
- is, or lies under, one of :data:`REFUSED_ROOTS` (``/proc``, ``/sys``, ``/dev``, ``/etc``,
  ``/run``, ``/boot``, ``/var/run``, ...);
- has a part named like a store of secrets or sockets (:data:`SECRET_NAMES`: ``.ssh``,
  ``.gnupg``, ``.aws``, ``.config``, ``.docker``, ``.kube``, ``.netrc``, ``.ember``,
  ``.X11-unix``, ...);
- does not exist, or is reached through a symlink (give the resolved path);
- is, lies under, or contains a protected path: ember's home (``$EMBER_HOME``, ``~/.ember``
  and whatever the runner was told), the runner's support directory, or the command's
  workspace.

What remains is the caller's choice: a bound directory is readable in full, and a Unix socket
in it can be connected to, so bind only what a command needs (an interpreter, a virtualenv,
a server's code), never a directory that holds credentials or sockets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from ember.errors import BadRequest

__all__ = [
    "MAX_READ_ONLY_PATHS",
    "REFUSED_ROOTS",
    "SECRET_NAMES",
    "WHOLE_TREES",
    "check_read_only_paths",
    "check_syntax",
    "ember_homes",
]

MAX_READ_ONLY_PATHS = 16
"""The most read-only paths one command may be given."""

REFUSED_ROOTS = (
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/run",
    "/boot",
    "/var/run",
    "/var/lock",
    "/lost+found",
)
"""Host trees nothing of which is shown to a command: kernel interfaces, devices, the host's
configuration and secrets (``/etc/shadow``, ``/etc/ssh``), run-time state and sockets."""

WHOLE_TREES = (
    "/",
    "/tmp",
    "/var",
    "/var/tmp",
    "/home",
    "/root",
    "/mnt",
    "/media",
    "/opt",
    "/srv",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/workspace",
)
"""Trees that may not be bound whole (everyone's files, or the sandbox's own mount points);
a path below one may."""

SECRET_NAMES = frozenset(
    {
        ".ssh",
        ".gnupg",
        ".aws",
        ".azure",
        ".config",
        ".docker",
        ".kube",
        ".netrc",
        ".pgpass",
        ".git-credentials",
        ".password-store",
        ".vault-token",
        ".ember",
        ".X11-unix",
        ".ICE-unix",
        ".font-unix",
    }
)
"""Path parts that name where credentials or sockets are usually kept; a path with one is
refused."""


def ember_homes() -> list[Path]:
    """Where ember's home may be without being told: ``$EMBER_HOME`` and ``~/.ember``."""
    homes = [Path("~/.ember").expanduser()]
    if configured := os.environ.get("EMBER_HOME"):
        homes.append(Path(configured).expanduser())
    return [Path(os.path.abspath(home)) for home in homes]


def _refused(entry: str, why: str) -> BadRequest:
    return BadRequest(f"read-only path {entry!r} is refused: {why}", extra={"path": entry})


def _within(path: PurePosixPath, root: PurePosixPath) -> bool:
    return path == root or root in path.parents


def check_syntax(entries: Sequence[str]) -> tuple[str, ...]:
    """``entries`` when each passes the checks that need no host (see the module).

    :raises BadRequest: an entry is refused; ``extra["path"]`` names it.
    """
    if len(entries) > MAX_READ_ONLY_PATHS:
        raise BadRequest(f"at most {MAX_READ_ONLY_PATHS} read-only paths")
    for entry in entries:
        if not isinstance(entry, str) or "\0" in entry or not entry.startswith("/"):
            raise _refused(str(entry), "not an absolute path")
        path = PurePosixPath(entry)
        if str(path) != entry or ".." in path.parts or "/./" in f"{entry}/":
            raise _refused(entry, "not canonical (no '.', '..', '//' or trailing '/')")
        if entry in WHOLE_TREES:
            raise _refused(entry, "the whole tree may not be bound, only a path below it")
        for root in REFUSED_ROOTS:
            if _within(path, PurePosixPath(root)):
                raise _refused(entry, f"nothing under {root} may be shown to a command")
        secret = next((part for part in path.parts if part in SECRET_NAMES), None)
        if secret is not None:
            raise _refused(entry, f"{secret!r} names a store of credentials")
    return tuple(dict.fromkeys(entries))


def check_read_only_paths(entries: Sequence[str], protected: Iterable[Path]) -> tuple[str, ...]:
    """``entries`` when each passes every check of the module against this host;
    ``protected`` are the paths none may be, lie under or contain (ember's home, the
    runner's support directory, the workspace).

    :raises BadRequest: an entry is refused; ``extra["path"]`` names it.
    """
    checked = check_syntax(entries)
    guarded = [PurePosixPath(os.path.realpath(path)) for path in protected]
    for entry in checked:
        if not os.path.lexists(entry):
            raise _refused(entry, "it does not exist")
        resolved = os.path.realpath(entry)
        if resolved != entry:
            raise _refused(entry, f"it is reached through a symlink (it is {resolved})")
        path = PurePosixPath(entry)
        for guard in guarded:
            if _within(path, guard) or _within(guard, path):
                raise _refused(entry, f"it is, holds or lies in {guard}, which is protected")
    return checked
