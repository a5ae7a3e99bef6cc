#!/bin/sh
# release: drop the memory a fill took (delete its file from the /dev/shm tmpfs).
# The guest frees the pages; the host keeps them until the guest reuses them (there is no balloon).
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
fill=/dev/shm/ksmtop/fill
if [ -e "$fill" ] && [ ! -L /dev/shm/ksmtop ]; then
    rm -f "$fill"
    echo "release: fill removed"
else
    echo "release: no fill to remove"
fi
