#!/bin/sh
# idle [SECONDS]: do nothing for SECONDS (default 60), the study's baseline.
# POSIX sh; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
seconds=${1:-60}
case $seconds in '' | *[!0-9]*) echo "idle: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
echo "idle: sleeping $seconds s"
sleep "$seconds"
echo "idle: done"
