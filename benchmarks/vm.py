"""What ember adds to a VM's boot, against a bare QEMU booting the same kernel and initramfs
in the same run.

- **bare**: ``qemu-system-x86_64`` started directly with the image's kernel and initramfs
  (the same run request appended), the same devices (a virtio workspace disk, the image's
  read-only root disk, the three virtio-serial ports, the serial console on a pipe), q35, no
  network, 1 vCPU, 256 MiB.
  *Boot to command* ends when the guest agent prints ``ember-guest: running``; the VM is done
  when QEMU exits after the guest powers off.
- **ember**: :meth:`VMRunner.run` of ``true`` through libvirt, from the call to the agent's
  ``running`` line (``boot_s``: the disk and initramfs made, the domain defined and booted)
  and to the call's return (the command's result read, the domain destroyed, the files read
  back, its directory removed).

The two are interleaved, ``--runs`` of each. VMs per minute is one after another (60 s over
the mean time per VM). Target: ember's boot to command at most 1.2x the bare boot's at p50;
under TCG the bare boot itself under 5 s. On a machine with KVM, ``--accel kvm`` runs the
same comparison under KVM.

    .venv/bin/python benchmarks/vm.py [--runs 10] [--accel tcg|kvm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

from ember.config import EmberConfig
from ember.services.adapters import hypervisor
from ember.vm.disk import make_disk
from ember.vm.image import GuestImage
from ember.vm.request import GuestLimits, request_archive
from ember.vm.runner import VMLimits, VMRunner

LIMITS = VMLimits(vcpus=1, memory_mib=256, disk_mib=16, timeout_s=120.0)
READY = b"ember-guest: running"


def bare_boot(image: GuestImage, scratch: Path, accel: str) -> tuple[float, float]:
    """One bare QEMU boot of ``true``: seconds to the agent's running line, and to QEMU's
    exit."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (scratch / "ws").mkdir()
    started = time.monotonic()
    initrd = scratch / "initrd.img"
    with open(initrd, "wb") as out:
        out.write(image.initrd.read_bytes())
        out.write(b"\0" * (-out.tell() % 4))
        guest = GuestLimits(output_bytes=LIMITS.output_bytes)
        out.write(request_archive(["true"], limits=guest, root_disk=image.root is not None))
    make_disk(scratch / "ws", scratch / "disk.img", LIMITS.disk_mib)
    argv = [
        "qemu-system-x86_64",
        "-machine", f"q35,accel={accel}",
        "-m", str(LIMITS.memory_mib),
        "-smp", "1",
        "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
        "-kernel", str(image.kernel),
        "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet panic=-1",
        "-serial", "stdio",
        "-drive", f"file={scratch / 'disk.img'},format=raw,if=virtio",
        "-device", "virtio-serial-pci",
    ]  # fmt: skip
    if image.root is not None:
        argv += ["-drive", f"file={image.root},format=raw,if=virtio,readonly=on"]
    for n, port in enumerate(("org.ember.stdout", "org.ember.stderr", "org.ember.status")):
        argv += [
            "-chardev", f"file,id=c{n},path={scratch / port}",
            "-device", f"virtserialport,chardev=c{n},name={port}",
        ]  # fmt: skip
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert process.stdout is not None
    seen = b""
    ready = 0.0
    while READY not in seen:
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"bare QEMU ended before the agent ran: {seen[-500:]!r}")
        seen += chunk
    ready = time.monotonic() - started
    process.stdout.read()
    process.wait()
    process.stdout.close()
    status = (scratch / "org.ember.status").read_text()
    if not status.startswith("exit=0"):
        raise RuntimeError(f"bare QEMU's command did not succeed: {status!r}")
    return ready, time.monotonic() - started


async def ember_boot(runner: VMRunner, workspace: Path) -> tuple[float, float]:
    started = time.monotonic()
    result = await runner.run(["true"], workspace, LIMITS)
    if result.exit_code != 0:
        raise RuntimeError(f"ember's command did not succeed: {result}")
    return result.boot_s, time.monotonic() - started


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples, 0.5),
        "p99": percentile(samples, 0.99),
        "mean": statistics.fmean(samples),
    }


async def measure(runs: int, accel: str) -> dict[str, Any]:
    config = EmberConfig()
    image = GuestImage.load(config.vm_image_dir)
    root = Path(tempfile.mkdtemp(prefix="ember-vm-bench-", dir="/var/tmp"))
    root.chmod(0o711)
    runner = VMRunner(hypervisor(config.vm.uri), lambda: image, root, accel=accel)  # type: ignore[arg-type]
    workspace = root / "ws"
    workspace.mkdir()
    times: dict[str, list[float]] = {
        k: [] for k in ("bare_boot", "bare_vm", "ember_boot", "ember_vm")
    }
    try:
        await ember_boot(runner, workspace)  # warm libvirt's capability cache and page cache
        bare_boot(image, root / "bare", accel)
        for _ in range(runs):
            boot, whole = bare_boot(image, root / "bare", accel)
            times["bare_boot"].append(boot)
            times["bare_vm"].append(whole)
            boot, whole = await ember_boot(runner, workspace)
            times["ember_boot"].append(boot)
            times["ember_vm"].append(whole)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    found: dict[str, Any] = {name: summary(samples) for name, samples in times.items()}
    found["boot_ratio_p50"] = found["ember_boot"]["p50"] / found["bare_boot"]["p50"]
    found["vms_per_minute"] = {
        "bare": 60 / found["bare_vm"]["mean"],
        "ember": 60 / found["ember_vm"]["mean"],
    }
    found["runs"] = runs
    found["accel"] = accel
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    args = parser.parse_args()
    found = asyncio.run(measure(args.runs, args.accel))
    print(f"\n{args.runs} VMs of `true` each, {args.accel}\n")
    print("| | boot to command p50 | p99 | VM done p50 | p99 | VMs per minute |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("bare", "ember"):
        boot, whole = found[f"{name}_boot"], found[f"{name}_vm"]
        print(
            f"| {name} | {boot['p50']:.2f} s | {boot['p99']:.2f} s | {whole['p50']:.2f} s | "
            f"{whole['p99']:.2f} s | {found['vms_per_minute'][name]:.1f} |"
        )
    print(f"\nember / bare, boot to command at p50: {found['boot_ratio_p50']:.2f}x")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
