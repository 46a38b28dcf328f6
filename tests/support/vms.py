"""A pytest plugin (listed in ``tests/conftest.py``): what the VM tests stand on.

The guest image ``make test`` builds (and the packages it was built from), the real libvirt
hypervisor, and a runner whose VMs are checked gone after every test (no domain, no QEMU
process, no directory left). A machine without libvirt or without a built image skips these
tests with the reason."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.config import EmberConfig
from ember.errors import VMImageInvalid, VMUnavailable
from ember.observability.metrics import PrometheusMetrics
from ember.testing.sandbox import host_processes_with
from ember.vm.image import GuestImage
from ember.vm.protocol import Accel
from ember.vm.runner import VMRunner
from ember.vm.sandbox import VMSandbox


def _image_dir() -> Path:
    return EmberConfig().vm_image_dir


@pytest.fixture(scope="session")
def built_image() -> GuestImage:
    try:
        return GuestImage.load(_image_dir())
    except VMImageInvalid as exc:
        pytest.skip(f"no guest image: {exc.detail}")


@pytest.fixture(scope="session")
def package_files(built_image: GuestImage) -> tuple[Path, Path, list[Path]]:
    """The kernel, busybox-static and root disk packages the image was built from (kept
    beside it)."""
    debs = built_image.directory.parent / "debs"
    kernel = debs / str(built_image.manifest["kernel_package"])
    busybox = debs / str(built_image.manifest["busybox_package"])
    roots = [debs / str(name) for name in built_image.manifest.get("root_packages", [])]  # type: ignore[attr-defined]
    if not all(path.is_file() for path in (kernel, busybox, *roots)):
        pytest.skip(f"the packages the image was built from are not in {debs}")
    return kernel, busybox, roots


@pytest.fixture(scope="session")
def hypervisor() -> object:
    try:
        from ember.vm.libvirt_hypervisor import LibvirtHypervisor
    except ImportError as exc:
        pytest.skip(f"libvirt-python is not installed: {exc}")
    found = LibvirtHypervisor()
    try:
        found.version()
    except VMUnavailable as exc:
        pytest.skip(f"no hypervisor: {exc.detail}")
    return found


@pytest.fixture(scope="session")
def vm_root() -> Iterator[Path]:
    """A work root for this session's VMs, reachable by libvirt's QEMU user."""
    root = Path("/var/tmp") / f"ember-vm-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    yield root
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def leftovers(runner: VMRunner) -> list[str]:
    """What a runner's VMs left: running domains, QEMU processes, VM directories."""
    found = [f"domain {name}" for name in runner._hypervisor.names(runner.prefix)]
    found += [f"qemu pid {pid}" for pid in host_processes_with(runner.prefix)]
    root = runner._root
    if root.is_dir():
        found += [f"dir {p.name}" for p in root.iterdir() if p.name.startswith("vm-")]
    return found


@pytest.fixture
def runner(hypervisor: object, built_image: GuestImage, vm_root: Path) -> Iterator[VMRunner]:
    made = VMRunner(
        hypervisor,  # type: ignore[arg-type]
        lambda: built_image,
        vm_root,
        accel="tcg",
        metrics=PrometheusMetrics(),
    )
    yield made
    left = leftovers(made)
    for name in made._hypervisor.names(made.prefix):
        made._hypervisor.destroy(name)
    assert left == [], f"VMs left behind: {left}"


def sandbox_leftovers(sandbox: VMSandbox, root: Path, prefix: str) -> list[str]:
    """What a VM sandbox left: running domains, QEMU processes, VM directories."""
    found = [f"domain {name}" for name in sandbox._hypervisor.names(prefix)]
    found += [f"qemu pid {pid}" for pid in host_processes_with(prefix)]
    if root.is_dir():
        found += [f"dir {p.name}" for p in root.iterdir() if p.name.startswith("sbx-")]
    return found


@pytest.fixture
def vm_sandbox(hypervisor: object, built_image: GuestImage, vm_root: Path) -> Iterator[VMSandbox]:
    """The VM sandbox tier under TCG; every VM of it is checked gone after the test."""
    if built_image.root is None:
        pytest.skip("the guest image has no root disk: rebuild it with `ember vm image build`")
    prefix = f"ember-sbx-test-{uuid.uuid4().hex[:6]}-"
    root = vm_root / "sandbox"

    async def tcg() -> Accel:
        return "tcg"

    made = VMSandbox(
        hypervisor,  # type: ignore[arg-type]
        lambda: built_image,
        uri="qemu:///system",
        image_dir=built_image.directory,
        work_root=root,
        accel=tcg,
        known_accel=lambda: "tcg",
        name_prefix=prefix,
    )
    yield made
    left = sandbox_leftovers(made, root, prefix)
    for name in made._hypervisor.names(prefix):
        made._hypervisor.destroy(name)
    assert left == [], f"sandbox VMs left behind: {left}"
