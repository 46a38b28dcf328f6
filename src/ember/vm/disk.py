"""The workspace disk: a raw ext4 image made from a host directory before the VM boots and
read back into it after the VM is gone (``mkfs.ext4 -d`` and ``debugfs rdump`` from
e2fsprogs: neither mounts anything, so neither needs root).

The disk's size is a hard limit on what the guest can write. Reading back copies regular
files, directories and symbolic links (as links, never followed); ``lost+found`` is left
out.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ember.errors import BadRequest, VMFailed

__all__ = ["make_disk", "read_back"]


def make_disk(source: Path, image: Path, size_mib: int) -> None:
    """Write an ext4 image of ``size_mib`` MiB at ``image`` holding ``source``'s files.

    :raises BadRequest: ``source``'s files do not fit in ``size_mib``.
    :raises VMFailed: ``mkfs.ext4`` is missing or failed otherwise.
    """
    argv = [
        _tool("mkfs.ext4"),
        "-q",
        "-F",
        "-m",
        "0",
        "-O",
        "^has_journal",
        "-E",
        "root_owner=0:0",
        "-d",
        str(source),
        str(image),
        f"{size_mib}M",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()
        image.unlink(missing_ok=True)
        if "Could not allocate" in message or "No space" in message or "too small" in message:
            raise BadRequest(
                f"the workspace does not fit a {size_mib} MiB disk: raise disk_mib",
                extra={"disk_mib": size_mib},
            )
        raise VMFailed(f"mkfs.ext4 failed: {message[-500:]}")


def read_back(image: Path, target: Path) -> None:
    """Copy the files of ``image`` into ``target`` (an existing, empty directory).

    :raises VMFailed: the image cannot be read.
    """
    done = subprocess.run(
        [_tool("debugfs"), "-R", f"rdump / {target}", str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ")
    ]
    if done.returncode != 0 or errors:
        raise VMFailed(f"cannot read the workspace disk back: {' '.join(errors)[-500:]}")
    shutil.rmtree(target / "lost+found", ignore_errors=True)


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise VMFailed(f"{name} is not installed (Debian package e2fsprogs)")
    return found
