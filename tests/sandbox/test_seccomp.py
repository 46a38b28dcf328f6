"""The seccomp filter, read instruction by instruction: a small classic-BPF interpreter runs
the program libseccomp compiled against made-up system calls, so every rule (and the
architecture checks) is checked without a kernel in the loop. test_escapes.py checks the
same rules against the real kernel."""

from __future__ import annotations

import errno
import platform
import struct

import pytest

from ember.errors import SandboxUnavailable
from ember.sandbox.seccomp import NAMESPACE_FLAGS, REFUSED, build_filter

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the system call numbers below are x86_64's"
)

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_BIT = 0x40000000
ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000


def ERRNO(code: int) -> int:  # noqa: N802 (the kernel's name)
    return 0x00050000 | code


NUMBERS = {
    "read": 0,
    "write": 1,
    "getpid": 39,
    "socket": 41,
    "clone": 56,
    "ptrace": 101,
    "syslog": 103,
    "chroot": 161,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "acct": 163,
    "pivot_root": 155,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "kexec_load": 246,
    "perf_event_open": 298,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "bpf": 321,
    "kexec_file_load": 320,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "mount_setattr": 442,
}


@pytest.fixture(scope="module")
def program() -> list[tuple[int, int, int, int]]:
    try:
        data = build_filter()
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    return [struct.unpack("=HBBI", data[i : i + 8]) for i in range(0, len(data), 8)]


def run(
    program: list[tuple[int, int, int, int]],
    nr: int,
    *args: int,
    arch: int = AUDIT_ARCH_X86_64,
) -> int:
    """What the filter answers for this call (``struct seccomp_data`` built by hand)."""
    values = [*args, *[0] * (6 - len(args))]
    data = struct.pack("<iIQ6Q", nr if nr < 2**31 else nr - 2**32, arch, 0, *values)
    acc, pc = 0, 0
    for _ in range(10_000):
        code, jt, jf, k = program[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:  # BPF_LD | BPF_IMM
            acc = k
        elif code == 0x54:  # BPF_ALU | BPF_AND | BPF_K
            acc &= k
        elif code == 0x15:  # BPF_JMP | BPF_JEQ | BPF_K
            pc += jt if acc == k else jf
        elif code == 0x25:  # BPF_JGT
            pc += jt if acc > k else jf
        elif code == 0x35:  # BPF_JGE
            pc += jt if acc >= k else jf
        elif code == 0x45:  # BPF_JSET
            pc += jt if acc & k else jf
        elif code == 0x05:  # BPF_JA
            pc += k
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            raise NotImplementedError(f"BPF opcode {code:#x} at {pc}")
        pc += 1
    raise AssertionError("the program did not return")


def test_ordinary_calls_are_allowed(program: list[tuple[int, int, int, int]]) -> None:
    assert run(program, NUMBERS["read"], 0, 0, 10) == ALLOW
    assert run(program, NUMBERS["write"], 1, 0, 10) == ALLOW
    assert run(program, NUMBERS["getpid"]) == ALLOW
    assert run(program, NUMBERS["socket"], 2, 1, 0) == ALLOW  # AF_INET, SOCK_STREAM
    assert run(program, NUMBERS["socket"], 1, 1 | 0x80000, 0) == ALLOW  # AF_UNIX, CLOEXEC
    assert run(program, NUMBERS["socket"], 16, 3, 0) == ALLOW  # AF_NETLINK, SOCK_RAW
    threads = 0x003D0F00  # CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD...
    assert run(program, NUMBERS["clone"], threads) == ALLOW
    assert run(program, NUMBERS["clone"], 17) == ALLOW  # fork: SIGCHLD


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_refused_call_fails_with_its_errno(
    program: list[tuple[int, int, int, int]], name: str
) -> None:
    assert name in NUMBERS, f"add {name}'s x86_64 number to this test"
    assert run(program, NUMBERS[name]) == ERRNO(REFUSED[name])


def test_the_core_refusals_are_in_the_table() -> None:
    core = {"io_uring_setup", "io_uring_enter", "io_uring_register", "ptrace", "bpf"}
    core |= {"keyctl", "add_key", "request_key", "mount", "umount2", "unshare", "setns"}
    core |= {"perf_event_open"}
    assert core <= set(REFUSED)
    assert all(code in (errno.EPERM, errno.ENOSYS) for code in REFUSED.values())


@pytest.mark.parametrize("flag", sorted(NAMESPACE_FLAGS))
def test_clone_into_a_new_namespace_is_refused(
    program: list[tuple[int, int, int, int]], flag: str
) -> None:
    assert run(program, NUMBERS["clone"], NAMESPACE_FLAGS[flag] | 17) == ERRNO(errno.EPERM)


def test_raw_and_packet_sockets_are_refused(program: list[tuple[int, int, int, int]]) -> None:
    socket = NUMBERS["socket"]
    eperm = ERRNO(errno.EPERM)
    assert run(program, socket, 17, 3, 0) == eperm  # AF_PACKET, SOCK_RAW
    assert run(program, socket, 17, 2, 0) == eperm  # AF_PACKET, SOCK_DGRAM
    assert run(program, socket, 2, 3, 1) == eperm  # AF_INET, SOCK_RAW
    assert run(program, socket, 10, 3 | 0x800 | 0x80000, 58) == eperm  # + NONBLOCK, CLOEXEC
    # the kernel reads the domain as an int: high bits must not let AF_PACKET through
    assert run(program, socket, (1 << 32) | 17, 2, 0) == eperm
    assert run(program, socket, (0xFFFF_FFFF << 32) | 17, 1, 0) == eperm


def test_other_architectures_and_x32_calls_kill(program: list[tuple[int, int, int, int]]) -> None:
    assert run(program, 20, arch=AUDIT_ARCH_I386) == KILL_PROCESS  # i386 getpid via int 0x80
    assert run(program, 172, arch=AUDIT_ARCH_AARCH64) == KILL_PROCESS
    assert run(program, X32_BIT | NUMBERS["getpid"]) == KILL_PROCESS
    assert run(program, X32_BIT | NUMBERS["ptrace"]) == KILL_PROCESS
