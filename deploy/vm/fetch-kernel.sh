#!/usr/bin/env bash
# Fetch Debian's current amd64 kernel (vmlinuz + modules) into $1 without
# installing it: `apt-get download` of the real linux-image-X package that
# linux-image-amd64 points at, unpacked with dpkg -x. Idempotent.
set -euo pipefail
dest=${1:?usage: fetch-kernel.sh DIR}
mkdir -p "$dest"
if ls "$dest"/root/boot/vmlinuz-* >/dev/null 2>&1; then exit 0; fi
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
cd "$dest"
apt-get download "$pkg" >/dev/null
dpkg -x "$pkg"_*.deb root
rm -f "$pkg"_*.deb
ls root/boot/vmlinuz-*
