"""Guest images: a Debian kernel and an initramfs ember builds from Debian packages.

An image is a directory holding ``vmlinuz`` (the kernel, booted directly), ``initrd.img``
(a gzip'd cpio: busybox-static, the kernel modules the guest needs with their dependencies,
and ember's guest agent as ``/init``) and ``image.json`` (what it was built from). A run
appends its own small uncompressed cpio (the command, its stdin and limits) to a copy of
``initrd.img``: see :mod:`ember.vm.request`.

:class:`GuestImageBuilder` builds one from two ``.deb`` files: a kernel package
(``linux-image-*-cloud-amd64`` by default: its LZ4-compressed kernel reaches userspace in
about 2 s under TCG, against 5 s for the XZ-compressed generic one) and ``busybox-static``.
:func:`fetch_packages` downloads them with ``apt-get download`` (the only step that needs the
network).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ember.errors import BadRequest, VMImageInvalid, VMUnavailable
from ember.vm import cpio
from ember.vm.disk import link, make_disk

__all__ = [
    "DEFAULT_KERNEL_PACKAGE",
    "GUEST_MODULES",
    "ROOT_EXCLUDED",
    "ROOT_PACKAGES",
    "GuestImage",
    "GuestImageBuilder",
    "fetch_packages",
    "fetch_root_packages",
]

DEFAULT_KERNEL_PACKAGE = "linux-image-cloud-amd64"
ROOT_PACKAGES = ("python3", "coreutils", "dash", "grep", "sed", "findutils")
"""What the guest's root disk is built from (with everything they depend on, but
:data:`ROOT_EXCLUDED`): a shell, the core tools and Python, so commands and agents find what
they find in ember's bubblewrap sandbox."""
ROOT_EXCLUDED = frozenset(
    {"perl", "perl-base", "perl-modules-5.36", "libperl5.36", "mailcap", "mime-support",
     "dpkg", "install-info", "tar", "debianutils", "libgdbm-compat4", "libgdbm6"}
)  # fmt: skip
"""Packages a dependency pulls in that nothing in the guest runs (the package manager,
Perl for ``mailcap``)."""
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_console", "overlay")
"""The modules the guest agent needs (their dependencies are added): the PCI transport, the
workspace disk, the virtio-serial ports, and overlayfs (a sandbox VM's root, where the
mount points of its read-only paths are made)."""

_MANIFEST = "image.json"
_DEPENDS = re.compile(rb"\x00depends=([^\x00]*)\x00")


@dataclass(frozen=True)
class GuestImage:
    """A built image: its directory, kernel, initramfs and manifest."""

    directory: Path
    kernel: Path
    initrd: Path
    manifest: dict[str, object]
    root: Path | None = None
    """The read-only root disk (``root.img``: Python, a shell, the core tools), when built."""

    def stage(self, directory: Path, request: bytes) -> None:
        """Put the files a VM of this image boots from into ``directory``: ``vmlinuz`` and
        ``root.img`` (hard links where they can be), and ``initrd.img``, this image's
        initramfs with ``request`` (an uncompressed cpio, :mod:`ember.vm.request`) appended
        4-aligned."""
        link(self.kernel, directory / "vmlinuz")
        if self.root is not None:
            link(self.root, directory / "root.img")
        with open(directory / "initrd.img", "wb") as initrd:
            with open(self.initrd, "rb") as base:
                shutil.copyfileobj(base, initrd)
            initrd.write(b"\0" * (-initrd.tell() % 4))  # each archive starts 4-aligned
            initrd.write(request)

    @classmethod
    def load(cls, directory: Path) -> GuestImage:
        """The image in ``directory``.

        :raises VMImageInvalid: the directory, its kernel, its initramfs or its manifest is
            missing or unreadable (``extra["path"]`` names which).
        """
        if not directory.is_dir():
            raise VMImageInvalid(
                f"no guest image at {directory}: build one with `ember vm image build`",
                extra={"path": str(directory)},
            )
        kernel, initrd, manifest = (directory / n for n in ("vmlinuz", "initrd.img", _MANIFEST))
        for path, what in ((kernel, "kernel"), (initrd, "initramfs"), (manifest, "manifest")):
            if not path.is_file():
                raise VMImageInvalid(
                    f"the guest image at {directory} has no {what} ({path.name}): "
                    "rebuild it with `ember vm image build`",
                    extra={"path": str(path)},
                )
        try:
            document = json.loads(manifest.read_text())
            if not isinstance(document, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            raise VMImageInvalid(
                f"the guest image manifest {manifest} is unreadable: {exc}",
                extra={"path": str(manifest)},
            ) from exc
        root = directory / "root.img"
        if document.get("root_packages") and not root.is_file():
            raise VMImageInvalid(
                f"the guest image at {directory} has no root disk (root.img): "
                "rebuild it with `ember vm image build`",
                extra={"path": str(root)},
            )
        return cls(directory, kernel, initrd, document, root if root.is_file() else None)


def fetch_packages(into: Path, kernel_package: str = DEFAULT_KERNEL_PACKAGE) -> list[Path]:
    """Download the kernel package (a metapackage is resolved to the kernel it depends on)
    and ``busybox-static`` into ``into`` with ``apt-get download``; the two ``.deb`` paths.

    :raises VMUnavailable: apt-get is missing or the download failed (its words in
        ``detail``).
    """
    into.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise VMUnavailable("apt-get is not on PATH: pass the .deb files to the builder")
    depends = _apt(["apt-cache", "depends", "--no-recommends", kernel_package], into)
    concrete = re.findall(r"Depends: (linux-image-\S+)", depends)
    return _download([concrete[0] if concrete else kernel_package, "busybox-static"], into)


def fetch_root_packages(
    into: Path, wanted: Sequence[str] = ROOT_PACKAGES, excluded: frozenset[str] = ROOT_EXCLUDED
) -> list[Path]:
    """Download ``wanted`` and what they depend on (recursively, without recommends and
    without ``excluded``) into ``into``; the ``.deb`` paths, sorted.

    :raises VMUnavailable: as :func:`fetch_packages`.
    """
    into.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise VMUnavailable("apt-get is not on PATH: pass the .deb files to the builder")
    flags = ["--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
             "--no-replaces", "--no-enhances"]  # fmt: skip
    listing = _apt(["apt-cache", "depends", *flags, *wanted], into)
    names = sorted(
        {line for line in listing.splitlines() if line and not line.startswith((" ", "<"))}
        - excluded
    )
    return _download(names, into)


def _download(packages: Sequence[str], into: Path) -> list[Path]:
    """``apt-get download`` each of ``packages`` into ``into``; their ``.deb`` paths."""
    _apt(["apt-get", "download", *packages], into)
    debs = []
    for package in packages:
        found = sorted(into.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise VMUnavailable(f"apt-get download left no .deb for {package} in {into}")
        debs.append(found[-1])
    return debs


def _apt(argv: Sequence[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise VMUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


class GuestImageBuilder:
    """Builds a :class:`GuestImage` from a kernel ``.deb`` and a ``busybox-static`` ``.deb``."""

    def __init__(self, modules: Iterable[str] = GUEST_MODULES) -> None:
        self._modules = tuple(modules)

    def build(
        self, kernel_deb: Path, busybox_deb: Path, out: Path, root_debs: Sequence[Path] = ()
    ) -> GuestImage:
        """Build the image into ``out`` (replaced whole once the new one is complete), with
        a read-only root disk unpacked from ``root_debs`` when given (the guest then runs
        commands in it, ``/workspace`` and a private ``/tmp`` mounted inside).

        :raises BadRequest: a ``.deb`` is missing or not what it should be (no kernel, no
            busybox, a module the guest needs is neither built in nor shipped).
        """
        for deb in (kernel_deb, busybox_deb, *root_debs):
            if not deb.is_file():
                raise BadRequest(f"no such package file: {deb}", extra={"path": str(deb)})
        with tempfile.TemporaryDirectory(prefix="ember-image-") as scratch:
            root = Path(scratch)
            _unpack(kernel_deb, root / "kernel")
            _unpack(busybox_deb, root / "busybox")
            kernels = sorted((root / "kernel" / "boot").glob("vmlinuz-*"))
            if not kernels:
                raise BadRequest(f"{kernel_deb.name} holds no /boot/vmlinuz-*")
            release = kernels[0].name.removeprefix("vmlinuz-")
            busybox = root / "busybox" / "bin" / "busybox"
            if not busybox.is_file():
                raise BadRequest(f"{busybox_deb.name} holds no /bin/busybox")
            modules = _modules(root / "kernel" / "lib" / "modules" / release, self._modules)
            initrd = _initramfs(busybox.read_bytes(), modules)
            staging = out.with_name(f".{out.name}.building")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            shutil.copyfile(kernels[0], staging / "vmlinuz")
            (staging / "initrd.img").write_bytes(initrd)
            if root_debs:
                _root_disk(root_debs, root / "rootfs", staging / "root.img")
            manifest = {
                "kernel_package": kernel_deb.name,
                "kernel_release": release,
                "busybox_package": busybox_deb.name,
                "modules": [name for name, _ in modules],
                "kernel_sha256": _sha256((staging / "vmlinuz").read_bytes()),
                "initrd_sha256": _sha256(initrd),
                "root_packages": sorted(deb.name for deb in root_debs),
            }
            (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            shutil.rmtree(out, ignore_errors=True)
            staging.rename(out)
        return GuestImage.load(out)


def _unpack(deb: Path, into: Path) -> None:
    done = subprocess.run(
        ["dpkg-deb", "-x", str(deb), str(into)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BadRequest(f"cannot unpack {deb.name}: {done.stderr.strip()}")


MOUNT_POINTS = ("workspace", "ember", "proc", "sys", "dev", "tmp", "run", "root")
"""Empty directories the root disk holds for what the guest agent mounts into it."""


def _root_disk(debs: Sequence[Path], tree: Path, image: Path) -> None:
    """Unpack ``debs`` into ``tree`` (no maintainer scripts run) and make ``image``, an ext4
    image of it sized to fit."""
    tree.mkdir()
    for deb in debs:
        _unpack(deb, tree)
    for name in MOUNT_POINTS:
        (tree / name).mkdir(exist_ok=True)
    if not (tree / "bin" / "sh").exists():
        (tree / "bin" / "sh").symlink_to("dash")
    size = sum(p.lstat().st_size for p in tree.rglob("*"))
    make_disk(tree, image, size * 13 // 10 // (1024 * 1024) + 32)


def _modules(tree: Path, wanted: Sequence[str]) -> list[tuple[str, bytes]]:
    """``wanted`` and what they depend on, dependencies first, as (name, ``.ko`` bytes);
    modules built into the kernel are skipped."""
    files = {path.name[:-3].replace("-", "_"): path for path in tree.rglob("*.ko")}
    builtin = set()
    listing = tree / "modules.builtin"
    if listing.is_file():
        builtin = {Path(line).name[:-3].replace("-", "_") for line in listing.read_text().split()}
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in files:
            if name in builtin or not files:
                return
            raise BadRequest(f"the kernel has no module {name!r}, built in or shipped")
        data = files[name].read_bytes()
        found = _DEPENDS.search(data)
        for dependency in found.group(1).decode().split(",") if found else ():
            if dependency:
                visit(dependency.replace("-", "_"))
        order.append((name, data))

    for name in wanted:
        visit(name)
    return order


def _initramfs(busybox: bytes, modules: Sequence[tuple[str, bytes]]) -> bytes:
    init = resources.files("ember.vm").joinpath("guest/init").read_bytes()
    entries = [
        cpio.directory("bin"),
        cpio.regular("bin/busybox", busybox, 0o755),
        cpio.symlink("bin/sh", "busybox"),
        cpio.regular("init", init, 0o755),
        cpio.directory("lib"),
        cpio.directory("lib/modules"),
        cpio.regular("lib/modules/order", "".join(f"{n}\n" for n, _ in modules).encode()),
        *(cpio.regular(f"lib/modules/{name}.ko", data) for name, data in modules),
    ]
    return gzip.compress(cpio.archive(entries), compresslevel=6, mtime=0)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
