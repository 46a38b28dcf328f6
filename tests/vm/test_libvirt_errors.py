"""libvirt's errors as ember sees them: :data:`LIBVIRT_ERRORS` names every ``VIR_ERR_*`` code
of the installed bindings (and nothing else), :func:`outcome_of` reads a raised error by it,
and :class:`LibvirtHypervisor` turns each outcome into ember's errors (an unreachable daemon
is :class:`VMUnavailable` saying how to start it). No VM is booted and no daemon is needed."""

from __future__ import annotations

from typing import Any

import pytest

from ember.errors import VMFailed, VMUnavailable

libvirt = pytest.importorskip("libvirt")

from ember.vm.libvirt_hypervisor import (  # noqa: E402
    LIBVIRT_ERRORS,
    LibvirtHypervisor,
    outcome_of,
)

LEVELS = {"VIR_ERR_NONE", "VIR_ERR_WARNING", "VIR_ERR_ERROR"}
"""``virErrorLevel`` values that share the ``VIR_ERR_`` prefix: levels, not codes."""

CODES = sorted(
    name
    for name in dir(libvirt)
    if name.startswith("VIR_ERR_")
    and isinstance(getattr(libvirt, name), int)
    and name not in LEVELS
)

UNREACHABLE = "qemu+unix:///system?socket=/nonexistent/ember-test/libvirt-sock"


def error_with(code: int, message: str = "it went wrong") -> Any:
    """A ``libvirtError`` as libvirt raises it, carrying ``code``."""
    error = libvirt.libvirtError(message)
    # (code, domain, message, level, str1, str2, str3, int1, int2): get_error_code reads [0]
    level = libvirt.VIR_ERR_ERROR
    error.err = (code, libvirt.VIR_FROM_QEMU, message, level, None, None, None, -1, -1)
    return error


def test_the_table_names_exactly_the_installed_codes() -> None:
    assert len(CODES) > 50
    assert set(LIBVIRT_ERRORS) - set(CODES) == set(), "names libvirt does not have"
    assert set(CODES) - set(LIBVIRT_ERRORS) == set(), "codes the table does not name"
    assert not LEVELS & set(LIBVIRT_ERRORS)


def test_every_outcome_is_one_of_three() -> None:
    assert set(LIBVIRT_ERRORS.values()) == {"unavailable", "gone", "failed"}
    assert LIBVIRT_ERRORS["VIR_ERR_NO_CONNECT"] == "unavailable"
    assert LIBVIRT_ERRORS["VIR_ERR_SYSTEM_ERROR"] == "unavailable"
    assert LIBVIRT_ERRORS["VIR_ERR_NO_DOMAIN"] == "gone"
    assert LIBVIRT_ERRORS["VIR_ERR_OPERATION_INVALID"] == "gone"
    assert LIBVIRT_ERRORS["VIR_ERR_INTERNAL_ERROR"] == "failed"
    assert LIBVIRT_ERRORS["VIR_ERR_XML_ERROR"] == "failed"


def test_the_codes_are_distinct() -> None:
    values = [getattr(libvirt, name) for name in CODES]
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("name", CODES)
def test_outcome_of_reads_each_code(name: str) -> None:
    error = error_with(getattr(libvirt, name))
    assert error.get_error_code() == getattr(libvirt, name)
    assert outcome_of(error) == LIBVIRT_ERRORS[name]


def test_an_unknown_code_or_none_is_failed() -> None:
    unknown = max(getattr(libvirt, name) for name in CODES) + 1000
    assert outcome_of(error_with(unknown)) == "failed"
    assert outcome_of(error_with(-7)) == "failed"
    bare = libvirt.libvirtError("no details")
    bare.err = None
    assert bare.get_error_code() is None
    assert outcome_of(bare) == "failed"


def test_an_unreachable_daemon_is_unavailable_with_how_to_start_it() -> None:
    hypervisor = LibvirtHypervisor(UNREACHABLE)
    with pytest.raises(VMUnavailable) as raised:
        hypervisor.version()
    error = raised.value
    assert "libvirtd" in error.detail
    assert "start" in error.detail
    assert "vm.uri" in error.detail
    assert UNREACHABLE in error.detail
    assert error.extra == {"uri": UNREACHABLE}
    assert isinstance(error.__cause__, libvirt.libvirtError)
    assert outcome_of(error.__cause__) == "unavailable"
    # Every call tries again (no broken connection is kept), and fails the same way.
    with pytest.raises(VMUnavailable, match="libvirtd"):
        hypervisor.names("ember-")
    with pytest.raises(VMUnavailable):
        hypervisor.running("ember-x")
    with pytest.raises(VMUnavailable):
        hypervisor.destroy("ember-x")


class FakeDomain:
    def __init__(self, name: str, *, state: int = 1, error: Any = None) -> None:
        self._name = name
        self._state = state
        self._error = error
        self.destroyed = False

    def name(self) -> str:
        if self._error is not None:
            raise self._error
        return self._name

    def state(self) -> tuple[int, int]:
        if self._error is not None:
            raise self._error
        return self._state, 0

    def destroy(self) -> int:
        if self._error is not None:
            raise self._error
        self.destroyed = True
        return 0


class FakeConnection:
    """A live connection whose calls answer from ``domains`` or raise ``error``."""

    def __init__(self, *, error: Any = None, domains: list[FakeDomain] | None = None) -> None:
        self.error = error
        self.domains = {d._name: d for d in domains or []}

    def isAlive(self) -> bool:  # noqa: N802 - libvirt's name
        return True

    def getLibVersion(self) -> int:  # noqa: N802
        if self.error is not None:
            raise self.error
        return 9_000_000

    def getVersion(self) -> int:  # noqa: N802
        return 8_002_001

    def lookupByName(self, name: str) -> FakeDomain:  # noqa: N802
        if self.error is not None:
            raise self.error
        if name not in self.domains:
            raise error_with(libvirt.VIR_ERR_NO_DOMAIN, f"no domain {name}")
        return self.domains[name]

    def listAllDomains(self, flags: int) -> list[FakeDomain]:  # noqa: N802
        if self.error is not None:
            raise self.error
        return list(self.domains.values())


def over(connection: FakeConnection) -> LibvirtHypervisor:
    hypervisor = LibvirtHypervisor(UNREACHABLE)
    hypervisor._connection = connection  # type: ignore[assignment]
    return hypervisor


def test_a_connection_error_is_unavailable_and_drops_the_connection() -> None:
    hypervisor = over(FakeConnection(error=error_with(libvirt.VIR_ERR_NO_CONNECT, "gone away")))
    with pytest.raises(VMUnavailable, match="gone away") as raised:
        hypervisor.version()
    assert "libvirtd" in raised.value.detail
    assert raised.value.extra == {"uri": UNREACHABLE}
    assert hypervisor._connection is None


def test_other_errors_are_vm_failed_and_keep_the_connection() -> None:
    connection = FakeConnection(error=error_with(libvirt.VIR_ERR_INTERNAL_ERROR, "qemu died"))
    hypervisor = over(connection)
    with pytest.raises(VMFailed, match="qemu died") as raised:
        hypervisor.version()
    assert "read the hypervisor's version" in raised.value.detail
    assert hypervisor._connection is connection


def test_a_working_connection_reports_versions() -> None:
    assert over(FakeConnection()).version() == "libvirt 9.0.0, QEMU 8.2.1"


def test_a_gone_domain_is_not_running_and_destroying_it_is_no_error() -> None:
    shut = FakeDomain("ember-shut", state=libvirt.VIR_DOMAIN_SHUTOFF)
    crashed = FakeDomain("ember-crashed", state=libvirt.VIR_DOMAIN_CRASHED)
    live = FakeDomain("ember-live", state=libvirt.VIR_DOMAIN_RUNNING)
    vanishing = FakeDomain(
        "ember-vanishing", error=error_with(libvirt.VIR_ERR_OPERATION_INVALID, "not running")
    )
    hypervisor = over(FakeConnection(domains=[shut, crashed, live, vanishing]))
    assert hypervisor.running("ember-live") is True
    assert hypervisor.running("ember-shut") is False
    assert hypervisor.running("ember-crashed") is False
    assert hypervisor.running("ember-missing") is False
    assert hypervisor.running("ember-vanishing") is False
    hypervisor.destroy("ember-missing")
    hypervisor.destroy("ember-vanishing")
    hypervisor.destroy("ember-live")
    assert live.destroyed


def test_a_failed_destroy_or_lookup_is_vm_failed() -> None:
    stuck = FakeDomain("ember-stuck", error=error_with(libvirt.VIR_ERR_OPERATION_FAILED, "stuck"))
    hypervisor = over(FakeConnection(domains=[stuck]))
    with pytest.raises(VMFailed, match="destroy VM ember-stuck"):
        hypervisor.destroy("ember-stuck")
    with pytest.raises(VMFailed, match="stuck"):
        hypervisor.running("ember-stuck")


def test_names_lists_matching_domains_and_skips_vanished_ones() -> None:
    hypervisor = over(
        FakeConnection(
            domains=[
                FakeDomain("ember-b"),
                FakeDomain("other-a"),
                FakeDomain("ember-a"),
                FakeDomain("x", error=error_with(libvirt.VIR_ERR_NO_DOMAIN, "vanished")),
            ]
        )
    )
    assert hypervisor.names("ember-") == ["ember-a", "ember-b"]
    assert hypervisor.names("nothing-") == []
