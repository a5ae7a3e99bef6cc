#!/bin/sh
# fill_same MIB: put MIB MiB of identical data (every byte 'A') in guest memory (a file in /dev/shm/ksmtop, on the tmpfs).
# Every page is the same, within and across guests, so KSM can merge them all into one. Replaces an earlier fill.
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
mib=${1:-64}
case $mib in '' | *[!0-9]*) echo "fill_same: MIB must be a whole number, got '$mib'" >&2; exit 2 ;; esac
dir=/dev/shm/ksmtop
# a directory of root's own, not the world-writable /dev/shm itself: a guest user cannot plant a link or a file
# where root writes (refused if someone else made it first)
mkdir -m 700 "$dir" 2>/dev/null || true
if [ -L "$dir" ] || [ ! -d "$dir" ] || [ "$(stat -c %u "$dir")" != "$(id -u)" ]; then
    echo "fill_same: $dir is not a directory of this user's own; not writing there" >&2
    exit 1
fi
chmod 700 "$dir"
rm -f "$dir/fill"
if ! dd if=/dev/zero bs=1048576 count="$mib" 2>/dev/null | tr '\000' A >"$dir/fill"; then
    echo "fill_same: writing $mib MiB to $dir failed (tmpfs too small?)" >&2
    rm -f "$dir/fill"
    exit 1
fi
echo "fill_same: $mib MiB of identical data in $dir/fill"
