#!/bin/sh
# fill_random MIB: put MIB MiB of random data in guest memory (a file in /dev/shm/ksmtop, on the tmpfs).
# Random pages never match each other, so KSM can merge none of them. Replaces an earlier fill.
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
mib=${1:-64}
case $mib in '' | *[!0-9]*) echo "fill_random: MIB must be a whole number, got '$mib'" >&2; exit 2 ;; esac
dir=/dev/shm/ksmtop
# a directory of root's own, not the world-writable /dev/shm itself: a guest user cannot plant a link or a file
# where root writes (refused if someone else made it first)
mkdir -m 700 "$dir" 2>/dev/null || true
if [ -L "$dir" ] || [ ! -d "$dir" ] || [ "$(stat -c %u "$dir")" != "$(id -u)" ]; then
    echo "fill_random: $dir is not a directory of this user's own; not writing there" >&2
    exit 1
fi
chmod 700 "$dir"
rm -f "$dir/fill"
dd if=/dev/urandom of="$dir/fill" bs=1048576 count="$mib" 2>/dev/null || {
    echo "fill_random: writing $mib MiB to $dir failed (tmpfs too small?)" >&2
    rm -f "$dir/fill"
    exit 1
}
echo "fill_random: $mib MiB of random data in $dir/fill"
