"""What a machine needs before a bubblewrap sandbox can run there, checked one by one, each
failure a :class:`~ember.errors.SandboxUnavailable` naming it; and the clean-up of what a
killed ember left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ember.errors import SandboxUnavailable

__all__ = ["SUPPORT_PREFIX", "bwrap_version", "check_user_namespaces", "remove_stale_support"]

SUPPORT_PREFIX = "ember-sandbox-"
"""A sandbox's private support directory is ``ember-sandbox-<pid>-<random>``."""


def remove_stale_support(parent: Path) -> None:
    """Remove support directories whose ember process is gone (killed before it could)."""
    try:
        found = [path for path in parent.iterdir() if path.name.startswith(SUPPORT_PREFIX)]
    except OSError:
        return
    for path in found:
        pid = path.name[len(SUPPORT_PREFIX) :].partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def check_user_namespaces(proc_sys: Path = Path("/proc/sys")) -> None:
    """:raises SandboxUnavailable: the kernel will not make a user namespace for us."""
    try:
        limit = (proc_sys / "user" / "max_user_namespaces").read_text().strip()
    except OSError:
        limit = ""
    if limit == "0":
        raise SandboxUnavailable("user namespaces are disabled (user.max_user_namespaces = 0)")
    try:
        unprivileged = (proc_sys / "kernel" / "unprivileged_userns_clone").read_text().strip()
    except OSError:
        unprivileged = ""
    if unprivileged == "0" and os.geteuid() != 0:
        raise SandboxUnavailable(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
        )


def bwrap_version(bwrap: str) -> str:
    try:
        done = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"bubblewrap ({bwrap}) cannot be run: {exc}") from exc
    words = done.stdout.split()
    if done.returncode != 0 or not words:
        raise SandboxUnavailable(f"bubblewrap ({bwrap}) cannot be run: {done.stderr.strip()}")
    return words[-1]
