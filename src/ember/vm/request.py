"""What one run tells the guest agent: an uncompressed cpio appended to the image's
initramfs, holding ``/ember/command`` (a shell script that exports ``env`` and execs
``argv``), ``/ember/stdin`` and ``/ember/limits``."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ember.errors import BadRequest
from ember.vm import cpio

__all__ = ["GuestLimits", "request_archive"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
