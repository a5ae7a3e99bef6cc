"""Lab guests as libvirt domains (`ksmtop lab up --libvirt`): same image, managed by libvirtd.

Domain names are data: the XML is built with ElementTree (escaped), nothing reaches a shell. The kernel and
initramfs are copied under /var/lib/libvirt/images/ so the libvirt-qemu user can read them. The domain type is
"kvm" where a probe boot showed KVM works and "qemu" (TCG) otherwise; <acpi/> lets a shutdown power it off.
"""

from __future__ import annotations

import shutil
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.lab.image import LabImage
from ksmtop.lab.paths import LabError

IMAGES_DIR = Path("/var/lib/libvirt/images/ksmtop-lab")
UUID_NAMESPACE = uuid.UUID("6b2f3d62-8a55-4c39-9c5e-6f0d1b0c4a11")
MAX_NAME_CHARS = 200


def domain_uuid(name: str) -> str:
    """A fixed UUID per name, so re-defining a lab domain keeps its identity."""
    return str(uuid.uuid5(UUID_NAMESPACE, name))


def install_image(image: LabImage, images_dir: Path = IMAGES_DIR) -> tuple[Path, Path]:
    """Copy the lab kernel and initramfs where libvirt's qemu user may read them (once per image)."""
    target = images_dir / image.image_id
    kernel, initramfs = target / "vmlinuz", target / "initramfs.gz"
    if not (kernel.exists() and initramfs.exists()):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.kernel, kernel)
        shutil.copyfile(image.initramfs, initramfs)
        for path in (images_dir, target, kernel, initramfs):
            path.chmod(0o755 if path.is_dir() else 0o644)
    return kernel, initramfs


def domain_xml(name: str, kernel: Path, initramfs: Path, memory_mib: int, accel: str) -> str:
    """The libvirt XML of one lab guest; ``name`` may hold any characters but '/'."""
    if not name or "/" in name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise LabError(f"invalid domain name {name!r}: printable, no '/', at most {MAX_NAME_CHARS} characters")
    domain = ET.Element("domain", type="kvm" if accel == "kvm" else "qemu")
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "uuid").text = domain_uuid(name)
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(domain, "vcpu").text = "1"
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_element, "kernel").text = str(kernel)
    ET.SubElement(os_element, "initrd").text = str(initramfs)
    ET.SubElement(os_element, "cmdline").text = "console=ttyS0 quiet panic=-1"
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "destroy"
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def define_lab_domains(
    connection: LibvirtConnection,
    image: LabImage,
    names: list[str],
    memory_mib: int,
    accel: str,
    start: bool = True,
) -> list[str]:
    """Define (and start) lab domains; ones already defined are started if they are not running."""
    kernel, initramfs = install_image(image)
    existing = {domain.name: domain for domain in connection.domains()}
    for name in names:
        if name not in existing:
            connection.define(domain_xml(name, kernel, initramfs, memory_mib, accel))
        if start and not (name in existing and existing[name].running):
            try:
                connection.start(name)
            except LibvirtError as exc:
                raise LabError(str(exc)) from None
    return names
