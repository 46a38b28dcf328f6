"""The libvirt domain XML of a :class:`~ember.vm.protocol.DomainSpec`.

A q35 machine booted directly from the spec's kernel and initramfs: ACPI on (without it the
guest's power-off halts instead of ending the domain), every lifecycle event ends the domain,
one virtio disk (and read-only root and data disks), the serial console and virtio-serial
ports appended to host files or on Unix sockets, and no network device, balloon, USB, sound
or graphics.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

from ember.vm.protocol import DomainSpec

__all__ = ["domain_xml"]


def domain_xml(spec: DomainSpec) -> str:
    """The domain XML that runs ``spec`` (``type='kvm'`` for KVM, ``'qemu'`` for TCG)."""
    domain = Element("domain", type="kvm" if spec.accel == "kvm" else "qemu")
    SubElement(domain, "name").text = spec.name
    SubElement(domain, "memory", unit="MiB").text = str(spec.memory_mib)
    SubElement(domain, "vcpu").text = str(spec.vcpus)
    os_ = SubElement(domain, "os")
    SubElement(os_, "type", arch="x86_64", machine="q35").text = "hvm"
    SubElement(os_, "kernel").text = str(spec.kernel)
    SubElement(os_, "initrd").text = str(spec.initrd)
    SubElement(os_, "cmdline").text = spec.cmdline
    features = SubElement(domain, "features")
    SubElement(features, "acpi")
    if spec.accel == "kvm":
        SubElement(domain, "cpu", mode="host-passthrough")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        SubElement(domain, event).text = "destroy"
    devices = SubElement(domain, "devices")
    disk = SubElement(devices, "disk", type="file", device="disk")
    SubElement(disk, "driver", name="qemu", type="raw")
    SubElement(disk, "source", file=str(spec.disk))
    SubElement(disk, "target", dev="vda", bus="virtio")
    for target, path in (("vdb", spec.root_disk), ("vdc", spec.data_disk)):
        if path is not None:
            extra = SubElement(devices, "disk", type="file", device="disk")
            SubElement(extra, "driver", name="qemu", type="raw")
            SubElement(extra, "source", file=str(path))
            SubElement(extra, "target", dev=target, bus="virtio")
            SubElement(extra, "readonly")
    serial = SubElement(devices, "serial", type="file")
    SubElement(serial, "source", path=str(spec.console))
    SubElement(serial, "target", port="0")
    for port, path in spec.channels.items():
        channel = SubElement(devices, "channel", type="file")
        SubElement(channel, "source", path=str(path))
        SubElement(channel, "target", type="virtio", name=port)
    for port, path in spec.sockets.items():
        channel = SubElement(devices, "channel", type="unix")
        SubElement(channel, "source", mode="bind", path=str(path))
        SubElement(channel, "target", type="virtio", name=port)
    SubElement(devices, "memballoon", model="none")
    return tostring(domain, encoding="unicode")
