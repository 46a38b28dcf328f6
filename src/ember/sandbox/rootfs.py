"""The minimal root a sandboxed command sees, as bubblewrap options.

- ``/usr`` read-only, and ``/bin``, ``/sbin``, ``/lib*`` as the host has them (symlinks into
  ``/usr`` on a merged-``/usr`` system, read-only binds otherwise);
- an ``/etc`` of its own, bound read-only: a copy, made when the sandbox is checked, of the
  few host entries programs need (:data:`HOST_ETC`: the dynamic loader's cache,
  ``alternatives``, CA certificates, time zone, ...), and generated ``passwd``, ``group``,
  ``hosts``, ``hostname`` and ``nsswitch.conf`` that name only the sandbox's user. Nothing
  else of the host's ``/etc`` (``shadow``, ``ssh``, ``ssl/private``, ``environment``,
  credentials of any kind) exists inside. One bind instead of one per file: each mount costs
  bubblewrap time on every command;
- a new ``/proc`` (its own pid namespace only; bubblewrap keeps ``/proc/sys`` read-only), a
  minimal ``/dev``, read-only but for a private ``/dev/shm``;
- private tmpfs ``/tmp`` and ``/dev/shm``, each capped (at half of ``memory_bytes``: their
  content is memory, counted by the memory cgroup where it holds);
- the caller's read-only paths (:mod:`ember.sandbox.binds`), each at its own path;
- the workspace, read-write, at :data:`~ember.sandbox.protocol.WORKDIR`;
- then the root itself remounted read-only: ``/`` and ``/dev`` take no new files.

No home directory, no ``/sys``, no ``/run``, no ``/var`` but a ``/var/tmp`` link to ``/tmp``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ember.sandbox.protocol import WORKDIR

__all__ = ["GENERATED", "HOME", "HOST_ETC", "TOP_LEVEL", "RootFs", "nul_joined"]

HOME = "/tmp"
"""The sandbox user's home: private and thrown away with the sandbox."""

HOST_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates.conf",
    "pki/ca-trust/extracted",
    "pki/tls/certs",
    "pki/tls/openssl.cnf",
    "localtime",
    "timezone",
    "protocols",
    "services",
    "rpc",
    "mime.types",
    "magic",
    "magic.mime",
    "gai.conf",
    "host.conf",
    "os-release",
    "lsb-release",
    "debian_version",
    "locale.alias",
    "inputrc",
    "shells",
)
"""Host ``/etc`` entries copied when present (plus ``python3*``: Debian's Python reads its
``sitecustomize`` from there). Symlinks are copied as links; ``ssl/private`` and
``pki/tls/private`` are left out on purpose."""

TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

GENERATED = ("passwd", "group", "hosts", "hostname", "nsswitch.conf")

NSSWITCH = """\
passwd:    files
group:     files
shadow:    files
hosts:     files
networks:  files
protocols: files
services:  files
"""


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


@dataclass(frozen=True)
class RootFs:
    """The root's layout, fixed when the sandbox is made; :meth:`options` per command."""

    etc: Path
    """The sandbox's ``/etc`` on the host (in the sandbox's private support directory)."""
    copied: tuple[str, ...]
    """The :data:`HOST_ETC` entries that existed and were copied."""
    top: tuple[tuple[str, str | None], ...]
    """Top-level ``(name, symlink target)``; target ``None``: bind the host directory."""

    @classmethod
    def build(cls, support: Path, *, hostname: str, host_root: Path = Path("/")) -> RootFs:
        """Make the sandbox's ``/etc`` in ``support`` and note what the host's root has."""
        uid, gid = os.getuid(), os.getgid()
        etc = support / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        host_etc = host_root / "etc"
        names = [name for name in HOST_ETC if os.path.lexists(host_etc / name)]
        names += sorted(path.name for path in host_etc.glob("python3*"))
        for name in names:
            _copy(host_etc / name, etc / name)
        user = "root" if uid == 0 else "sandbox"
        group = "root" if gid == 0 else "sandbox"
        files = {
            "passwd": (
                f"{user}:x:{uid}:{gid}:{user}:{HOME}:/bin/sh\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
            "group": f"{group}:x:{gid}:\nnogroup:x:65534:\n",
            "hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{hostname}\n",
            "hostname": f"{hostname}\n",
            "nsswitch.conf": NSSWITCH,
        }
        for name, text in files.items():
            (etc / name).write_text(text)
            (etc / name).chmod(0o644)
        top: list[tuple[str, str | None]] = []
        for name in TOP_LEVEL:
            path = host_root / name
            if path.is_symlink():
                top.append((name, os.readlink(path)))
            elif path.is_dir():
                top.append((name, None))
        return cls(etc, tuple(names), tuple(top))

    def intact(self) -> bool:
        """Whether the generated files are still there (a temp cleaner may take them)."""
        return all((self.etc / name).exists() for name in GENERATED)

    def options(
        self,
        workspace: Path,
        *,
        tmp_bytes: int,
        hostname: str,
        read_only: Sequence[str] = (),
    ) -> list[str]:
        """bubblewrap's filesystem options for one command (``workspace`` already resolved;
        ``read_only`` already checked by :func:`~ember.sandbox.binds.check_read_only_paths`)."""
        opts = ["--ro-bind", "/usr", "/usr"]
        for name, target in self.top:
            if target is None:
                opts += ["--ro-bind", f"/{name}", f"/{name}"]
            else:
                opts += ["--symlink", target, f"/{name}"]
        opts += ["--ro-bind", str(self.etc), "/etc"]
        opts += ["--proc", "/proc", "--dev", "/dev"]
        opts += ["--size", str(tmp_bytes), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        opts += ["--size", str(tmp_bytes), "--tmpfs", "/tmp"]
        opts += ["--dir", "/var", "--symlink", "../tmp", "/var/tmp"]
        for path in read_only:
            opts += ["--ro-bind", path, path]
        opts += ["--bind", str(workspace), WORKDIR]
        opts += ["--hostname", hostname, "--remount-ro", "/", "--chdir", WORKDIR]
        return opts


def nul_joined(args: Sequence[str]) -> bytes:
    """``args`` as bubblewrap's ``--args FD`` reads them: each one NUL-terminated."""
    return b"".join(arg.encode() + b"\0" for arg in args)
