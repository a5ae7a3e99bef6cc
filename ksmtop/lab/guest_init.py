"""The lab guest's /init and /sbin/shutdown, as busybox sh scripts.

/init mounts the pseudo file systems and a tmpfs on /dev/shm (where the fill workloads put their data; sized to
the memory free at boot less a reserve, so a fill too big fails with ENOSPC instead of leaving the guest kernel
out of memory), loads the virtio modules, creates /dev/virtio-ports/NAME links (there is no udev), and keeps
qemu-ga running on the agent port. qemu-ga's guest-shutdown runs /sbin/shutdown, which busybox lacks: ours powers
off (or reboots) at once.
"""

from __future__ import annotations

AGENT_PORT = "org.qemu.guest_agent.0"

_INIT = r"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts /dev/virtio-ports /run /tmp
# /dev/shm may take what is free at boot less 24 MiB, so an oversized fill ends in ENOSPC, not a guest OOM panic
available_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
shm_kb=$((available_kb - 24576))
[ "$shm_kb" -lt 4096 ] && shm_kb=4096
mount -t tmpfs -o "size=${shm_kb}k" shm /dev/shm
mount -t tmpfs -o mode=0755 run /run
name=$(sed -n 's/.*ksmtop\.name=\([A-Za-z0-9._-]*\).*/\1/p' /proc/cmdline)
[ -n "$name" ] && hostname "$name"
for module in @MODULES@; do
    insmod "/lib/modules/$module.ko" || echo "ksmtop-lab: insmod $module failed"
done
tries=0
while [ ! -e /dev/virtio-ports/@PORT@ ] && [ "$tries" -lt 100 ]; do
    for port in /sys/class/virtio-ports/*; do
        [ -r "$port/name" ] || continue
        ln -sf "../${port##*/}" "/dev/virtio-ports/$(cat "$port/name")"
    done
    tries=$((tries + 1))
    sleep 0.1
done
echo "ksmtop-lab: $name up, starting qemu-ga"
while true; do
    qemu-ga -m virtio-serial -p /dev/virtio-ports/@PORT@ -t /run
    echo "ksmtop-lab: qemu-ga exited ($?), restarting"
    sleep 1
done
"""

SHUTDOWN_SCRIPT = r"""#!/bin/sh
# qemu-ga runs "shutdown -h -P +0 MESSAGE" (powerdown), "-h -H" (halt) or "-r" (reboot).
sync
case " $* " in
    *" -r "*) exec reboot -f ;;
    *" -H "*) exec halt -f ;;
esac
exec poweroff -f
"""


def init_script(modules: list[str]) -> str:
    """/init for a guest that loads ``modules`` (names without .ko, in load order)."""
    for module in modules:
        if not module.replace("_", "").isalnum():
            raise ValueError(f"unexpected module name {module!r}")
    return _INIT.replace("@MODULES@", " ".join(modules)).replace("@PORT@", AGENT_PORT)
