"""The pieces a VM is made of, without booting one: the cpio writer, the run's request, the
workspace disk, the domain XML, the guest image builder and loader, and libvirt's error
table."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ember.errors import BadRequest, VMImageInvalid
from ember.vm import cpio
from ember.vm.disk import make_disk, read_back
from ember.vm.domain import domain_xml
from ember.vm.image import GUEST_MODULES, GuestImage, GuestImageBuilder
from ember.vm.protocol import DomainSpec
from ember.vm.request import GuestLimits, request_archive


def unpack(data: bytes, into: Path) -> list[str]:
    """Unpack a cpio archive with GNU cpio (an independent reader); the names listed."""
    into.mkdir(exist_ok=True)
    done = subprocess.run(
        ["cpio", "-idm", "--no-absolute-filenames", "--quiet"],
        input=data,
        cwd=into,
        capture_output=True,
        check=True,
    )
    assert done.returncode == 0
    listed = subprocess.run(["cpio", "-t", "--quiet"], input=data, capture_output=True, check=True)
    return listed.stdout.decode().split()


def test_a_cpio_archive_unpacks_to_its_entries(tmp_path: Path) -> None:
    data = cpio.archive(
        [
            cpio.directory("etc"),
            cpio.regular("etc/odd", b"12345", 0o600),  # a size that needs padding
            cpio.regular("empty", b""),
            cpio.symlink("link", "etc/odd"),
        ]
    )
    assert len(data) % 4 == 0
    names = unpack(data, tmp_path / "out")
    assert names == ["etc", "etc/odd", "empty", "link"]
    assert (tmp_path / "out/etc/odd").read_bytes() == b"12345"
    assert stat.S_IMODE((tmp_path / "out/etc/odd").stat().st_mode) == 0o600
    assert (tmp_path / "out/empty").read_bytes() == b""
    assert (tmp_path / "out/link").readlink() == Path("etc/odd")
    assert cpio.archive([cpio.regular("a", b"x")]) == cpio.archive([cpio.regular("a", b"x")])


@pytest.mark.parametrize("path", ["", "/abs", "nul\0byte"])
def test_a_cpio_path_must_be_relative(path: str) -> None:
    with pytest.raises(ValueError, match="bad cpio path"):
        cpio.archive([cpio.regular(path, b"")])


def test_the_request_quotes_argv_and_env_for_the_guest_shell(tmp_path: Path) -> None:
    argv = ["printf", "%s|", "it's", "$HOME", "a b", "`x`"]
    data = request_archive(
        argv,
        env={"GREETING": "hi 'there'"},
        stdin=b"in\n",
        limits=GuestLimits(output_bytes=100, cpu_s=5, file_size_bytes=4096, open_files=64),
    )
    unpack(data, tmp_path / "req")
    command = (tmp_path / "req/ember/command").read_text()
    assert command.splitlines()[-1] == "exec " + shlex.join(argv)
    script = command.replace("exec ", "", 1) + "printf '%s' \"$GREETING\"\n"
    ran = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert ran.stdout == "it's|$HOME|a b|`x`|hi 'there'"
    assert (tmp_path / "req/ember/stdin").read_bytes() == b"in\n"
    limits = (tmp_path / "req/ember/limits").read_text().split()
    assert limits == ["OUTPUT_BYTES=100", "CPU_S=5", "FILE_BLOCKS=8", "OPEN_FILES=64"]
    unlimited = request_archive(["true"], limits=GuestLimits())
    unpack(unlimited, tmp_path / "plain")
    assert "CPU_S=unlimited" in (tmp_path / "plain/ember/limits").read_text()


@pytest.mark.parametrize(
    ("argv", "env"),
    [([], {}), (["a\0b"], {}), (["true"], {"1BAD": "x"}), (["true"], {"OK": "nul\0"})],
)
def test_a_request_that_cannot_be_passed_is_refused(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        request_archive(argv, env=env)


def test_the_workspace_disk_round_trips_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub/b.bin").write_bytes(bytes(range(256)) * 100)
    (source / "with space").write_text("s")
    image = tmp_path / "disk.img"
    make_disk(source, image, 16)
    assert image.stat().st_size == 16 * 1024 * 1024
    back = tmp_path / "back"
    back.mkdir()
    assert read_back(image, back, max_bytes=1 << 20) == []
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*")) == [
        "a.txt",
        "sub",
        "sub/b.bin",
        "with space",
    ]
    assert (back / "a.txt").read_text() == "alpha"
    assert (back / "sub/b.bin").read_bytes() == bytes(range(256)) * 100
    assert stat.S_IMODE((back / "a.txt").stat().st_mode) == 0o644


def test_reading_back_never_makes_or_follows_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    source = tmp_path / "src"
    source.mkdir()
    (source / "link").symlink_to(victim)
    (source / "fifo").mkdir()
    os.mkfifo(source / "fifo" / "pipe")
    (source / "setuid").write_text("x")
    (source / "setuid").chmod(0o4755)
    image = tmp_path / "disk.img"
    make_disk(source, image, 16)
    back = tmp_path / "back"
    back.mkdir()
    assert read_back(image, back, max_bytes=1 << 20) == ["fifo/pipe", "link"]
    assert not (back / "link").exists() and not (back / "link").is_symlink()
    assert victim.read_text() == "untouched"
    assert stat.S_IMODE((back / "setuid").stat().st_mode) == 0o644  # no setuid comes back


def test_sparse_files_and_hard_links_count_in_full(tmp_path: Path) -> None:
    from ember.errors import VMFailed

    source = tmp_path / "src"
    source.mkdir()
    with open(source / "sparse", "wb") as sparse:
        sparse.truncate(64 * 1024 * 1024)  # 64 MiB of hole in a 16 MiB disk
    image = tmp_path / "disk.img"
    make_disk(source, image, 16)
    back = tmp_path / "back"
    back.mkdir()
    with pytest.raises(VMFailed, match="more than 16777216 bytes"):
        read_back(image, back, max_bytes=16 * 1024 * 1024)
    assert list(back.iterdir()) == []
    (source / "sparse").unlink()
    (source / "one").write_bytes(b"x" * 600_000)
    for n in range(3):
        os.link(source / "one", source / f"link{n}")
    make_disk(source, image, 16)
    with pytest.raises(VMFailed):
        read_back(image, back, max_bytes=2_000_000)  # 4 names of 0.6 MB each


def test_files_that_do_not_fit_the_disk_are_a_bad_request(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "big").write_bytes(b"\1" * (12 * 1024 * 1024))
    with pytest.raises(BadRequest, match="does not fit a 8 MiB disk"):
        make_disk(source, tmp_path / "disk.img", 8)
    assert not (tmp_path / "disk.img").exists()


def test_the_domain_has_no_network_and_ends_on_every_event(tmp_path: Path) -> None:
    spec = DomainSpec(
        name="ember-test-1",
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initrd.img",
        cmdline="console=ttyS0",
        disk=tmp_path / "disk.img",
        console=tmp_path / "console.log",
        channels={"org.ember.status": tmp_path / "status"},
        vcpus=2,
        memory_mib=300,
        accel="tcg",
    )
    root = ET.fromstring(domain_xml(spec))
    assert root.get("type") == "qemu"
    assert root.findtext("memory") == "300" and root.findtext("vcpu") == "2"
    assert root.find("features/acpi") is not None  # without it power-off halts
    assert [root.findtext(e) for e in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy"] * 3
    devices = root.find("devices")
    assert devices is not None
    assert devices.find("interface") is None
    assert [c.find("target").get("name") for c in devices.findall("channel")] == [  # type: ignore[union-attr]
        "org.ember.status"
    ]
    assert devices.find("disk/source").get("file") == str(tmp_path / "disk.img")  # type: ignore[union-attr]
    kvm = ET.fromstring(domain_xml(DomainSpec(**{**spec.__dict__, "accel": "kvm"})))
    assert kvm.get("type") == "kvm" and kvm.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]


def test_a_sandbox_domain_has_socket_ports_and_read_only_disks(tmp_path: Path) -> None:
    spec = DomainSpec(
        name="ember-sbx-test-1",
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initrd.img",
        cmdline="console=ttyS0",
        disk=tmp_path / "disk.img",
        console=tmp_path / "console.log",
        root_disk=tmp_path / "root.img",
        data_disk=tmp_path / "data.img",
        sockets={"org.ember.stdin": tmp_path / "stdin.sock"},
        autodestroy=True,
    )
    devices = ET.fromstring(domain_xml(spec)).find("devices")
    assert devices is not None
    disks = {d.find("target").get("dev"): d for d in devices.findall("disk")}  # type: ignore[union-attr]
    assert sorted(disks) == ["vda", "vdb", "vdc"]
    assert [dev for dev, d in disks.items() if d.find("readonly") is not None] == ["vdb", "vdc"]
    assert disks["vdc"].find("source").get("file") == str(tmp_path / "data.img")  # type: ignore[union-attr]
    (channel,) = devices.findall("channel")
    assert channel.get("type") == "unix"
    source = channel.find("source")
    assert source is not None and source.get("mode") == "bind"
    assert source.get("path") == str(tmp_path / "stdin.sock")
    assert devices.find("interface") is None


# -- the image -------------------------------------------------------------------------------


def test_a_missing_image_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(VMImageInvalid, match="ember vm image build") as caught:
        GuestImage.load(tmp_path / "nowhere")
    assert caught.value.extra["path"] == str(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["vmlinuz", "initrd.img", "image.json", "root.img"])
def test_an_image_without_a_part_names_it(
    built_image: GuestImage, tmp_path: Path, missing: str
) -> None:
    copy = tmp_path / "image"
    shutil.copytree(built_image.directory, copy)
    (copy / missing).unlink()
    with pytest.raises(VMImageInvalid) as caught:
        GuestImage.load(copy)
    assert caught.value.extra["path"] == str(copy / missing)


def test_a_broken_manifest_is_invalid(built_image: GuestImage, tmp_path: Path) -> None:
    copy = tmp_path / "image"
    shutil.copytree(built_image.directory, copy)
    (copy / "image.json").write_text("[1, 2")
    with pytest.raises(VMImageInvalid, match="unreadable"):
        GuestImage.load(copy)


def test_the_builder_makes_an_initramfs_with_the_agent_and_the_modules_it_needs(
    package_files: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    kernel, busybox, _ = package_files
    image = GuestImageBuilder().build(kernel, busybox, tmp_path / "image")
    assert image.root is None and image.manifest["root_packages"] == []
    names = unpack(gzip.decompress(image.initrd.read_bytes()), tmp_path / "root")
    assert {"init", "bin/busybox", "bin/sh", "lib/modules/order"} <= set(names)
    order = (tmp_path / "root/lib/modules/order").read_text().split()
    assert order == image.manifest["modules"]
    for needed in GUEST_MODULES:
        assert needed in order
    assert order.index("virtio") < order.index("virtio_pci")  # dependencies come first
    assert order.index("virtio_ring") < order.index("virtio")
    assert (tmp_path / "root/init").read_bytes().startswith(b"#!/bin/busybox sh")
    manifest = json.loads((image.directory / "image.json").read_text())
    assert manifest["kernel_release"].endswith("-amd64")


def test_the_builder_refuses_packages_that_are_not_what_they_should_be(
    package_files: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    kernel, busybox, _ = package_files
    with pytest.raises(BadRequest, match="no such package file"):
        GuestImageBuilder().build(tmp_path / "none.deb", busybox, tmp_path / "image")
    with pytest.raises(BadRequest, match="holds no /boot/vmlinuz"):
        GuestImageBuilder().build(busybox, busybox, tmp_path / "image")
    with pytest.raises(BadRequest, match="holds no /bin/busybox"):
        GuestImageBuilder().build(kernel, kernel, tmp_path / "image")
    with pytest.raises(BadRequest, match="no module 'no_such_module'"):
        GuestImageBuilder(["no_such_module"]).build(kernel, busybox, tmp_path / "image")
    assert not (tmp_path / "image").exists()


def test_the_root_disk_holds_python_and_the_mount_points(
    package_files: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    kernel, busybox, roots = package_files
    if not roots:
        pytest.skip("the image ember built here has no root disk")
    image = GuestImageBuilder().build(kernel, busybox, tmp_path / "image", roots)
    assert image.root == tmp_path / "image" / "root.img"
    assert image.manifest["root_packages"] == sorted(deb.name for deb in roots)
    back = tmp_path / "root"
    back.mkdir()
    listing = subprocess.run(
        ["debugfs", "-R", "ls -p /", str(image.root)], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6}
    assert {"workspace", "ember", "proc", "sys", "dev", "tmp", "usr", "bin"} <= names
    found = subprocess.run(
        ["debugfs", "-R", "stat /usr/bin/python3.11", str(image.root)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Type: regular" in found


class Untouchable:
    """A hypervisor that must not be reached."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the hypervisor was called ({name}) before the memory check")


async def test_a_vm_that_does_not_fit_the_nodes_free_memory_is_refused_first(
    tmp_path: Path,
) -> None:
    from ember.errors import VMUnavailable
    from ember.vm.runner import VMLimits, VMRunner

    runner = VMRunner(
        Untouchable(),  # type: ignore[arg-type]
        lambda: (_ for _ in ()).throw(AssertionError("the image was loaded")),
        tmp_path / "vms",
        accel="tcg",
        free_memory_mib=lambda: 300,
    )
    with pytest.raises(VMUnavailable) as caught:
        await runner.run(["true"], tmp_path, VMLimits(memory_mib=256))
    assert caught.value.extra == {"available_mib": 300, "needed_mib": 320}
    assert not (tmp_path / "vms").exists()
