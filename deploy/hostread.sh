#!/bin/sh
# hostread.sh: run on the USB host (the machine the box's drive is plugged
# into) to read the drive the way the VM benchmark's host does: buffered
# 32 KiB reads of the device's last MiB (64 unless told), its page cache
# dropped before each round. Run it once with each gadget.backend to
# compare them on real hardware (docs/userspace-throughput.md, "On real hardware").
#
#   sudo sh hostread.sh DEVICE [MiB [ROUNDS]]     defaults: 64 MiB, 4 rounds
set -eu

usage="usage: hostread.sh DEVICE [MiB [ROUNDS]]"
fail() { echo "hostread: $*" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 3 ] || fail "$usage"
dev=$1
mib=${2:-64}
rounds=${3:-4}

for n in "$mib" "$rounds"; do
	case $n in '' | 0* | *[!0-9]*) fail "MiB and ROUNDS are whole numbers from 1, not \"$n\"; $usage" ;; esac
done
case $(date +%s%N) in *[!0-9]*) fail "needs a date that prints nanoseconds (date +%s%N, as GNU coreutils' does; busybox's does not)" ;; esac
[ -b "$dev" ] || fail "$dev is not a block device (the drive shows as /dev/sdX or /dev/srX; lsblk lists them)"
[ "$(id -u)" = 0 ] || fail "dropping the page cache between rounds needs root: run it with sudo"
size=$(blockdev --getsize64 "$dev") || fail "cannot read the size of $dev (no medium in the drive?)"
bytes=$((mib * 1048576))
blocks=$((mib * 32)) # of 32 KiB
[ "$size" -ge "$bytes" ] || fail "$dev holds $size bytes, fewer than $mib MiB: attach a bigger image or ask for fewer MiB"

# The last MiB, counted in 32 KiB blocks: an image's end is data, where its
# middle may be holes the box reads faster than real data.
skip=$(((size - bytes) / 32768))
rates=""
r=1
while [ "$r" -le "$rounds" ]; do
	blockdev --flushbufs "$dev"
	echo 1 >/proc/sys/vm/drop_caches
	# dd's own count says what it read: a pipe to count it would take CPU
	# while timed, which on a small host competes with the USB side.
	start=$(date +%s%N)
	report=$(dd if="$dev" of=/dev/null bs=32k skip="$skip" count="$blocks" 2>&1) || true
	end=$(date +%s%N)
	full=$(echo "$report" | sed -n 's/^\([0-9]*\)+[0-9]* records in$/\1/p')
	if [ "${full:-0}" -ne "$blocks" ]; then
		why=$(echo "$report" | grep -i error | head -1)
		fail "read ${full:-0} of $blocks blocks of 32 KiB from $dev in round $r: ${why:-the device ended early (was the medium changed?)}; the kernel's log (dmesg) says more"
	fi
	rate=$(awk -v b="$bytes" -v ns="$((end - start))" 'BEGIN { printf "%.1f", b * 1000 / ns }')
	echo "round $r: $rate MB/s"
	rates="$rates $rate"
	r=$((r + 1))
done
echo "$rates" | tr ' ' '\n' | grep . | sort -n | awk -v dev="$dev" -v mib="$mib" '
	{ v[NR] = $1 }
	END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%s: median %.1f MB/s over %d rounds of %d MiB\n", dev, m, NR, mib
	}'
