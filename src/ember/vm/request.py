"""What one run tells the guest agent: an uncompressed cpio appended to the image's
initramfs, holding ``/ember/command`` (a shell script that exports ``env`` and execs
``argv``), ``/ember/stdin`` and ``/ember/limits``; or, for a sandbox VM
(:func:`sandbox_archive`), ``/ember/walls.py`` and its ``/ember/walls.json``."""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from ember.errors import BadRequest
from ember.vm import cpio

__all__ = ["SANDBOX_UID", "GuestLimits", "request_archive", "sandbox_archive"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SANDBOX_UID = 1000
"""The unprivileged user a sandbox VM's command runs as (it owns ``/workspace``)."""


@dataclass(frozen=True)
class GuestLimits:
    """Limits the guest agent applies to the command: ``output_bytes`` of stdout and of
    stderr each are sent to the host (the rest is counted), and the rlimits ``cpu_s``,
    ``file_size_bytes`` and ``open_files`` (``None``: unlimited)."""

    output_bytes: int = 1024 * 1024
    cpu_s: int | None = None
    file_size_bytes: int | None = None
    open_files: int = 1024


def request_archive(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    limits: GuestLimits = GuestLimits(),
    root_disk: bool = False,
) -> bytes:
    """The cpio archive that makes the guest agent run ``argv`` (inside the root disk, the
    second virtio disk, when ``root_disk``).

    :raises BadRequest: ``argv`` is empty or holds a NUL byte; an ``env`` name is not a shell
        identifier or a value holds a NUL byte.
    """
    if not argv:
        raise BadRequest("the command is empty")
    if any("\0" in arg for arg in argv):
        raise BadRequest("the command holds a NUL byte")
    lines = []
    for name, value in (env or {}).items():
        if not _NAME.match(name) or "\0" in value:
            raise BadRequest(
                f"environment variable {name!r} cannot be passed", extra={"name": name}
            )
        lines.append(f"export {name}={shlex.quote(value)}\n")
    lines.append("exec " + " ".join(shlex.quote(arg) for arg in argv) + "\n")
    blocks = "unlimited" if limits.file_size_bytes is None else limits.file_size_bytes // 512
    settings = {
        "OUTPUT_BYTES": limits.output_bytes,
        "CPU_S": "unlimited" if limits.cpu_s is None else limits.cpu_s,
        "FILE_BLOCKS": blocks,
        "OPEN_FILES": limits.open_files,
    }
    limits_file = "".join(f"{name}={value}\n" for name, value in settings.items())
    marker = [cpio.regular("ember/root-disk", b"")] if root_disk else []
    return cpio.archive(
        [
            cpio.directory("ember"),
            *marker,
            cpio.regular("ember/command", "".join(lines).encode()),
            cpio.regular("ember/stdin", stdin or b""),
            cpio.regular("ember/limits", limits_file.encode()),
        ]
    )


def sandbox_archive(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    seccomp: bytes,
    rlimits: Sequence[tuple[str, int, int]] = (),
    read_only_paths: Sequence[str] = (),
    tmp_bytes: int,
    executor: bool = False,
) -> bytes:
    """The cpio archive that makes the guest agent run ``argv`` as a sandbox VM's command
    (:mod:`ember.vm.guest.walls`): with exactly ``env``, the ``seccomp`` filter (raw BPF),
    ``rlimits`` (``(name, soft, hard)``) and ``read_only_paths`` (on the data disk, ``vdc``),
    its stdio on the ``org.ember.stdin``/``stdout``/``stderr`` ports; ``executor``: ``argv``
    is the session executor's, run inside the walls' own interpreter. The caller has checked
    ``argv``, ``env`` and the paths."""
    walls = resources.files("ember.vm").joinpath("guest/walls.py").read_bytes()
    config = {
        "argv": list(argv),
        "env": dict(env),
        "uid": SANDBOX_UID,
        "seccomp": base64.b64encode(seccomp).decode(),
        "rlimits": [list(item) for item in rlimits],
        "read_only_paths": list(read_only_paths),
        "executor": executor,
    }
    settings = f"SANDBOX_UID={SANDBOX_UID}\nTMP_BYTES={max(1, tmp_bytes)}\n"
    data = [cpio.regular("ember/data-disk", b"")] if read_only_paths else []
    return cpio.archive(
        [
            cpio.directory("ember"),
            cpio.regular("ember/root-disk", b""),
            cpio.regular("ember/sandbox", b""),
            *data,
            cpio.regular("ember/command", b""),
            cpio.regular("ember/walls.py", walls),
            cpio.regular("ember/walls.json", json.dumps(config).encode()),
            cpio.regular("ember/limits", settings.encode()),
        ]
    )
