#!/bin/sh
# release: drop the memory a fill took (delete its file from the /dev/shm tmpfs).
# The guest frees the pages; the host keeps them until the guest reuses them (there is no balloon).
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
if [ -e /dev/shm/ksmtop-fill ]; then
    rm -f /dev/shm/ksmtop-fill
    echo "release: fill removed"
else
    echo "release: no fill to remove"
fi
