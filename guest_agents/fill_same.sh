#!/bin/sh
# fill_same MIB: put MIB MiB of identical data (every byte 'A') in guest memory (a file on the /dev/shm tmpfs).
# Every page is the same, within and across guests, so KSM can merge them all into one. Replaces an earlier fill.
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
mib=${1:-64}
case $mib in '' | *[!0-9]*) echo "fill_same: MIB must be a whole number, got '$mib'" >&2; exit 2 ;; esac
dir=/dev/shm
[ -d "$dir" ] && [ -w "$dir" ] || { echo "fill_same: $dir is missing or not writable" >&2; exit 1; }
rm -f "$dir"/ksmtop-fill
if ! dd if=/dev/zero bs=1048576 count="$mib" 2>/dev/null | tr '\000' A >"$dir/ksmtop-fill"; then
    echo "fill_same: writing $mib MiB to $dir failed (tmpfs too small?)" >&2
    rm -f "$dir/ksmtop-fill"
    exit 1
fi
echo "fill_same: $mib MiB of identical data in $dir/ksmtop-fill"
