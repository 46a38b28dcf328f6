"""The :class:`~ember.vm.protocol.Hypervisor` over libvirt (QEMU under KVM or TCG).

The only module that imports ``libvirt``. Its errors are translated here by
:data:`LIBVIRT_ERRORS`: every ``VIR_ERR_*`` code is named, as ``unavailable`` (the daemon or
the connection: :class:`~ember.errors.VMUnavailable`), ``gone`` (no such domain, or it is no
longer running: not an error for :meth:`LibvirtHypervisor.running` and
:meth:`LibvirtHypervisor.destroy`) or ``failed`` (:class:`~ember.errors.VMFailed`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal, TypeVar

import libvirt

from ember.errors import VMFailed, VMUnavailable
from ember.vm.domain import domain_xml
from ember.vm.protocol import DomainSpec

__all__ = ["DEFAULT_URI", "LIBVIRT_ERRORS", "LibvirtHypervisor", "Outcome"]

DEFAULT_URI = "qemu:///system"
Outcome = Literal["unavailable", "gone", "failed"]
T = TypeVar("T")

_UNAVAILABLE = (
    "NO_CONNECT INVALID_CONN NO_SUPPORT UNKNOWN_HOST RPC SYSTEM_ERROR AUTH_FAILED "
    "AUTH_CANCELLED AUTH_UNAVAILABLE GNUTLS_ERROR SSH LIBSSH NO_SERVER NO_CLIENT "
    "DBUS_SERVICE ACCESS_DENIED OPERATION_DENIED NO_MEMORY DRIVER_FULL NO_HOSTNAME"
)
_GONE = "NO_DOMAIN INVALID_DOMAIN OPERATION_INVALID"
_FAILED = (
    "OK INTERNAL_ERROR INVALID_ARG OPERATION_FAILED GET_FAILED POST_FAILED HTTP_ERROR "
    "SEXPR_SERIAL NO_XEN XEN_CALL OS_TYPE NO_KERNEL NO_ROOT NO_SOURCE NO_TARGET NO_NAME NO_OS "
    "NO_DEVICE NO_XENSTORE CALL_FAILED XML_ERROR DOM_EXIST OPEN_FAILED READ_FAILED "
    "PARSE_FAILED CONF_SYNTAX WRITE_FAILED XML_DETAIL INVALID_NETWORK NETWORK_EXIST "
    "NO_NETWORK INVALID_MAC INVALID_STORAGE_POOL INVALID_STORAGE_VOL NO_STORAGE_POOL "
    "NO_STORAGE_VOL INVALID_NODE_DEVICE NO_NODE_DEVICE NO_SECURITY_MODEL NO_INTERFACE "
    "INVALID_INTERFACE MULTIPLE_INTERFACES INVALID_NWFILTER NO_NWFILTER BUILD_FIREWALL "
    "INVALID_SECRET NO_SECRET CONFIG_UNSUPPORTED OPERATION_TIMEOUT MIGRATE_PERSIST_FAILED "
    "HOOK_SCRIPT_FAILED INVALID_DOMAIN_SNAPSHOT NO_DOMAIN_SNAPSHOT INVALID_STREAM "
    "ARGUMENT_UNSUPPORTED STORAGE_PROBE_FAILED STORAGE_POOL_BUILT SNAPSHOT_REVERT_RISKY "
    "OPERATION_ABORTED NO_DOMAIN_METADATA MIGRATE_UNSAFE OVERFLOW BLOCK_COPY_ACTIVE "
    "OPERATION_UNSUPPORTED AGENT_UNRESPONSIVE RESOURCE_BUSY STORAGE_VOL_EXIST "
    "CPU_INCOMPATIBLE XML_INVALID_SCHEMA MIGRATE_FINISH_OK AGENT_UNSYNCED DEVICE_MISSING "
    "INVALID_NWFILTER_BINDING NO_NWFILTER_BINDING INVALID_DOMAIN_CHECKPOINT "
    "NO_DOMAIN_CHECKPOINT NO_DOMAIN_BACKUP INVALID_NETWORK_PORT NETWORK_PORT_EXIST "
    "NO_NETWORK_PORT CHECKPOINT_INCONSISTENT MULTIPLE_DOMAINS"
)

LIBVIRT_ERRORS: dict[str, Outcome] = {
    **{f"VIR_ERR_{name}": "unavailable" for name in _UNAVAILABLE.split()},
    **{f"VIR_ERR_{name}": "gone" for name in _GONE.split()},
    **{f"VIR_ERR_{name}": "failed" for name in _FAILED.split()},
}
"""What each libvirt error code means to ember, by its ``VIR_ERR_*`` name (every one)."""

_BY_CODE: dict[int, Outcome] = {
    getattr(libvirt, name): outcome
    for name, outcome in LIBVIRT_ERRORS.items()
    if hasattr(libvirt, name)
}

_HOW_TO_START = (
    "start the libvirt daemons (as root without systemd: `virtlogd -d; libvirtd -d`; "
    "with systemd: `systemctl start libvirtd`), or set vm.uri"
)


def outcome_of(error: libvirt.libvirtError) -> Outcome:
    """What ``error`` means (``failed`` for a code the table does not know)."""
    code = error.get_error_code()
    return _BY_CODE.get(code, "failed") if code is not None else "failed"


class LibvirtHypervisor:
    """Transient QEMU domains through one libvirt connection (opened on first use and
    again after it broke), safe to call from several threads."""

    def __init__(self, uri: str = DEFAULT_URI) -> None:
        self._uri = uri
        self._lock = threading.Lock()
        libvirt.registerErrorHandler(_quiet, None)  # errors are raised, not printed
        self._connection: libvirt.virConnect | None = None

    def version(self) -> str:
        def work(connection: libvirt.virConnect) -> str:
            return (
                f"libvirt {_dotted(connection.getLibVersion())}, "
                f"QEMU {_dotted(connection.getVersion())}"
            )

        return self._call(work, "read the hypervisor's version")

    def start(self, spec: DomainSpec) -> None:
        xml = domain_xml(spec)

        def work(connection: libvirt.virConnect) -> None:
            flags = libvirt.VIR_DOMAIN_START_AUTODESTROY if spec.autodestroy else 0
            connection.createXML(xml, flags)

        self._call(work, f"start VM {spec.name}")

    def running(self, name: str) -> bool:
        def work(connection: libvirt.virConnect) -> bool:
            try:
                state, _reason = connection.lookupByName(name).state()
            except libvirt.libvirtError as exc:
                if outcome_of(exc) == "gone":
                    return False
                raise
            return state not in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED)

        return self._call(work, f"look up VM {name}")

    def destroy(self, name: str) -> None:
        def work(connection: libvirt.virConnect) -> None:
            try:
                connection.lookupByName(name).destroy()
            except libvirt.libvirtError as exc:
                if outcome_of(exc) != "gone":
                    raise

        self._call(work, f"destroy VM {name}")

    def names(self, prefix: str) -> list[str]:
        def work(connection: libvirt.virConnect) -> list[str]:
            found = []
            for domain in connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                try:
                    name = domain.name()
                except libvirt.libvirtError as exc:
                    if outcome_of(exc) == "gone":
                        continue
                    raise
                if name.startswith(prefix):
                    found.append(name)
            return sorted(found)

        return self._call(work, "list VMs")

    # -- the connection and error translation ---------------------------------------------

    def _call(self, work: Callable[[libvirt.virConnect], T], what: str) -> T:
        connection = self._connect()
        try:
            return work(connection)
        except libvirt.libvirtError as exc:
            outcome = outcome_of(exc)
            if outcome == "unavailable":
                self._drop(connection)
                raise VMUnavailable(
                    f"cannot {what}: {exc.get_error_message()}; {_HOW_TO_START}",
                    extra={"uri": self._uri},
                ) from exc
            raise VMFailed(f"cannot {what}: {exc.get_error_message()}") from exc

    def _connect(self) -> libvirt.virConnect:
        with self._lock:
            connection = self._connection
            if connection is not None and connection.isAlive():
                return connection
            try:
                connection = libvirt.open(self._uri)
            except libvirt.libvirtError as exc:
                raise VMUnavailable(
                    f"cannot reach libvirt at {self._uri}: {exc.get_error_message()}; "
                    f"{_HOW_TO_START}",
                    extra={"uri": self._uri},
                ) from exc
            self._connection = connection
            return connection

    def _drop(self, connection: libvirt.virConnect) -> None:
        with self._lock:
            if self._connection is connection:
                self._connection = None


def _quiet(_context: object, _error: object) -> None:
    return None


def _dotted(version: int) -> str:
    return f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}"
