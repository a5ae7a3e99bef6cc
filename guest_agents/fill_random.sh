#!/bin/sh
# fill_random MIB: put MIB MiB of random data in guest memory (a file on the /dev/shm tmpfs).
# Random pages never match each other, so KSM can merge none of them. Replaces an earlier fill.
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
mib=${1:-64}
case $mib in '' | *[!0-9]*) echo "fill_random: MIB must be a whole number, got '$mib'" >&2; exit 2 ;; esac
dir=/dev/shm
[ -d "$dir" ] && [ -w "$dir" ] || { echo "fill_random: $dir is missing or not writable" >&2; exit 1; }
rm -f "$dir"/ksmtop-fill
dd if=/dev/urandom of="$dir/ksmtop-fill" bs=1048576 count="$mib" 2>/dev/null || {
    echo "fill_random: writing $mib MiB to $dir failed (tmpfs too small?)" >&2
    rm -f "$dir/ksmtop-fill"
    exit 1
}
echo "fill_random: $mib MiB of random data in $dir/ksmtop-fill"
