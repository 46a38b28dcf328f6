"""The workspace disk: a raw ext4 image made from a host directory before the VM boots and
read back into it after the VM is gone (``mkfs.ext4 -d`` and ``debugfs`` from e2fsprogs:
neither mounts anything, so neither needs root).

The disk's size is a hard limit on what the guest can store. Reading back treats the image
as hostile (the guest may have written it block by block): see :func:`read_back`. Regular
files and directories come back; symbolic links, devices, FIFOs and sockets do not, and
``lost+found`` is left out.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from ember.errors import BadRequest, VMFailed

__all__ = ["link", "make_disk", "read_back", "replace_contents"]


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


def read_back(image: Path, target: Path, *, max_bytes: int, timeout_s: float = 120.0) -> list[str]:
    """Copy the regular files and directories of ``image`` into ``target`` (an existing,
    empty directory); the paths left out (symbolic links, devices, FIFOs, sockets, names
    that cannot be a file name), sorted.

    The image is the guest's, so it is read as hostile: ``debugfs`` only lists directories
    and dumps single inodes to names chosen here, each entry's name is checked, directory
    loops are cut, nothing is written outside ``target`` and no link is followed or made;
    files come back with mode 0644 and directories 0755, owned by the caller.

    :raises VMFailed: the image cannot be read, ``debugfs`` ran past ``timeout_s``, or the
        files would take more than ``max_bytes`` (sparse files and hard links count at
        their full size, as they would be written).
    """
    directories: dict[int, PurePosixPath] = {_ROOT: PurePosixPath()}
    files: list[tuple[int, PurePosixPath]] = []
    skipped: list[str] = []
    total = 0
    frontier = [_ROOT]
    while frontier:
        listing = _debugfs(image, [f"ls -p <{inode}>" for inode in frontier], timeout_s)
        frontier = []
        current: int | None = None
        for line in listing.splitlines():
            if line.startswith(_LS_ECHO):
                current = int(line[len(_LS_ECHO) : -1])
                continue
            if current is None or not line.startswith("/"):
                continue
            fields = line.split("/")
            if len(fields) != 8 or not fields[1].isdigit():
                skipped.append(f"{directories[current]}/?")
                continue
            inode, mode, name, size = int(fields[1]), int(fields[2], 8), fields[5], fields[6]
            if name in (".", "..") or (current == _ROOT and name == "lost+found"):
                continue
            path = directories[current] / name
            if not _fit_name(name):
                skipped.append(str(path))
            elif stat.S_ISDIR(mode) and inode not in directories:
                directories[inode] = path
                frontier.append(inode)
            elif stat.S_ISREG(mode) and size.isdigit():
                total += int(size)
                if total > max_bytes:
                    raise VMFailed(
                        f"the files left in the workspace would take more than {max_bytes} "
                        "bytes on the host (sparse files and hard links count in full)"
                    )
                files.append((inode, path))
            else:
                skipped.append(str(path))
    for path in sorted(directories.values()):
        (target / path).mkdir(mode=0o755, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".dump-") as scratch:
        dumps = [f"dump <{inode}> {scratch}/{n}" for n, (inode, _) in enumerate(files)]
        if dumps:
            _debugfs(image, dumps, timeout_s)
        for n, (_, path) in enumerate(files):
            dumped = Path(scratch) / str(n)
            try:
                dumped.chmod(0o644)
                dumped.rename(target / path)
            except OSError:
                skipped.append(str(path))
    return sorted(skipped)


_ROOT = 2
"""The root directory's inode in ext2/3/4."""
_LS_ECHO = "debugfs: ls -p <"


def _fit_name(name: str) -> bool:
    return bool(name) and "\0" not in name and len(name.encode()) <= 255


def _debugfs(image: Path, commands: list[str], timeout_s: float) -> str:
    """Run ``commands`` (one per line) in one ``debugfs`` on ``image``, read-only; its
    output (each command echoed as ``debugfs: <command>`` before its own)."""
    try:
        done = subprocess.run(
            [_tool("debugfs"), "-f", "-", str(image)],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise VMFailed(f"reading the workspace disk took more than {timeout_s:g} s") from exc
    if done.returncode != 0:
        raise VMFailed(f"cannot read the workspace disk back: {done.stderr.strip()[-500:]}")
    return done.stdout


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise VMFailed(f"{name} is not installed (Debian package e2fsprogs)")
    return found


def link(source: os.PathLike[str] | str, target: os.PathLike[str] | str) -> None:
    """``target`` as a hard link of ``source`` (a copy across filesystems)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def replace_contents(workspace: Path, source: Path) -> None:
    """Make ``workspace`` hold exactly ``source``'s entries (moved, not copied: ``source``
    is left empty; both on one filesystem)."""
    for entry in list(workspace.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in source.iterdir():
        entry.rename(workspace / entry.name)
