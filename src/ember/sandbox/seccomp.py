"""The seccomp filter every sandboxed command runs under, compiled by libseccomp.

The filter allows every system call but the ones in :data:`REFUSED` (and ``socket`` calls
that ask for a raw or packet socket, ``clone`` calls that ask for a new namespace), which
fail with the errno given there instead of running. It is built for the native architecture
only: a call made through another ABI (``int 0x80`` i386 calls, x32 calls on x86_64) kills
the process. bubblewrap loads it (``--seccomp FD``) after it has set the sandbox up and just
before it execs the command, so bubblewrap itself may still create namespaces and mount.

libseccomp is reached through ``pyseccomp`` (a ctypes binding to the system's
``libseccomp.so.2``), imported only here and only when a filter is built.
"""

from __future__ import annotations

import errno
import os
import tempfile
from typing import Any

from ember.errors import SandboxUnavailable

__all__ = ["NAMESPACE_FLAGS", "RAW_SOCKETS", "REFUSED", "build_filter"]

REFUSED: dict[str, int] = {
    # io_uring: a second syscall interface that bypasses per-syscall filtering
    "io_uring_setup": errno.ENOSYS,
    "io_uring_enter": errno.ENOSYS,
    "io_uring_register": errno.ENOSYS,
    # looking into or controlling other processes
    "ptrace": errno.EPERM,
    "process_vm_readv": errno.EPERM,
    "process_vm_writev": errno.EPERM,
    "perf_event_open": errno.EPERM,
    "bpf": errno.EPERM,
    "userfaultfd": errno.EPERM,
    # the kernel keyring is not namespaced
    "keyctl": errno.EPERM,
    "add_key": errno.EPERM,
    "request_key": errno.EPERM,
    # mounts and namespaces: the sandbox's shape is fixed once bubblewrap has built it
    "mount": errno.EPERM,
    "umount2": errno.EPERM,
    "pivot_root": errno.EPERM,
    "chroot": errno.EPERM,
    "move_mount": errno.EPERM,
    "open_tree": errno.EPERM,
    "fsopen": errno.EPERM,
    "fsconfig": errno.EPERM,
    "fsmount": errno.EPERM,
    "fspick": errno.EPERM,
    "mount_setattr": errno.EPERM,
    "unshare": errno.EPERM,
    "setns": errno.EPERM,
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc use clone
    "clone3": errno.ENOSYS,
    # the machine itself
    "kexec_load": errno.EPERM,
    "kexec_file_load": errno.EPERM,
    "init_module": errno.EPERM,
    "finit_module": errno.EPERM,
    "delete_module": errno.EPERM,
    "reboot": errno.EPERM,
    "swapon": errno.EPERM,
    "swapoff": errno.EPERM,
    "acct": errno.EPERM,
    "syslog": errno.EPERM,
    "open_by_handle_at": errno.EPERM,
}
"""System call -> the errno it fails with inside the sandbox."""

NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}
"""``clone`` flags that would make a new namespace: ``clone`` with any of them fails EPERM."""

AF_NETLINK = 16
AF_PACKET = 17
SOCK_RAW = 3
SOCK_TYPE_MASK = 0xF
"""``socket``'s type argument carries ``SOCK_NONBLOCK``/``SOCK_CLOEXEC`` above this mask."""
RAW_SOCKETS = {"domain": AF_PACKET, "type": SOCK_RAW}
"""``socket(AF_PACKET, ...)`` and ``socket(..., SOCK_RAW, ...)`` fail EPERM, but for
``AF_NETLINK``: its raw sockets are how a program lists its (here: loopback only) network
interfaces, and they reach only the sandbox's own, empty network namespace."""

_INT_MASK = 0xFFFF_FFFF
"""``int`` arguments are compared on their low 32 bits only: the kernel ignores the high
half, so a filter that compared all 64 bits could be dodged by setting it."""


def _library() -> Any:
    try:
        import pyseccomp  # type: ignore[import-untyped]
    except (ImportError, OSError, RuntimeError) as exc:  # the binding or libseccomp.so.2
        raise SandboxUnavailable(
            f"libseccomp is not usable ({exc}); install libseccomp2 and pyseccomp"
        ) from exc
    return pyseccomp


def build_filter() -> bytes:
    """The filter as a classic BPF program, the bytes ``bwrap --seccomp FD`` reads.

    :raises SandboxUnavailable: libseccomp (or its binding) is missing, or a core rule
        cannot be compiled.
    """
    seccomp = _library()
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
        native = seccomp.system_arch()
        for name, code in REFUSED.items():
            try:
                number = seccomp.resolve_syscall(native, name)
            except (OSError, ValueError):
                continue  # too new for this libseccomp: the kernel is older still
            if number < 0:
                continue
            rules.add_rule(seccomp.ERRNO(code), number)
        eperm = seccomp.ERRNO(errno.EPERM)
        for flag in NAMESPACE_FLAGS.values():
            rules.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        rules.add_rule(eperm, "socket", seccomp.Arg(0, seccomp.MASKED_EQ, _INT_MASK, AF_PACKET))
        raw = seccomp.Arg(1, seccomp.MASKED_EQ, SOCK_TYPE_MASK, SOCK_RAW)
        rules.add_rule(eperm, "socket", raw, seccomp.Arg(0, seccomp.NE, AF_NETLINK))
        with tempfile.TemporaryFile() as out:
            rules.export_bpf(out)
            out.seek(0)
            program: bytes = out.read()
    except OSError as exc:
        raise SandboxUnavailable(f"libseccomp could not compile the filter: {exc}") from exc
    if not program or len(program) % 8:
        raise SandboxUnavailable("libseccomp produced no usable filter")
    return program


def write_filter(path: os.PathLike[str] | str) -> None:
    """Write :func:`build_filter`'s program to ``path`` (mode 0600)."""
    program = build_filter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(program)
