#!/bin/sh
# primes [LIMIT]: count the primes below LIMIT (default 20000) by trial division: CPU-bound, little memory.
# POSIX sh + awk; runs under busybox. Started by ksmtop through qemu-guest-agent (guest-exec).
set -eu
limit=${1:-20000}
case $limit in '' | *[!0-9]*) echo "primes: LIMIT must be a whole number, got '$limit'" >&2; exit 2 ;; esac
echo "primes: searching below $limit"
awk -v limit="$limit" 'BEGIN {
    count = 0
    for (n = 2; n < limit; n++) {
        prime = 1
        for (d = 2; d * d <= n; d++) if (n % d == 0) { prime = 0; break }
        if (prime) { count++; last = n }
    }
    printf "primes: %d primes below %d, largest %d\n", count, limit, last
}'
