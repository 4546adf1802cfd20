#!/usr/bin/env bash
# Fetch Debian's current kernel (vmlinuz + modules) for VM_ARCH (amd64, the
# default, or armhf: linux-image-armmp) into $1 without installing it:
# `apt-get download` of the real linux-image-X package that the meta
# package points at, unpacked with dpkg -x. For armhf also busybox-static,
# the guest's shell. Idempotent.
set -euo pipefail
dest=${1:?usage: fetch-kernel.sh DIR}
arch=${VM_ARCH:-amd64}
case $arch in
amd64) meta=linux-image-amd64; extra= ;;
armhf) meta=linux-image-armmp:armhf; extra=busybox-static:armhf
	dpkg --print-foreign-architectures | grep -qx armhf || { dpkg --add-architecture armhf; apt-get update -qq; } ;;
*) echo "fetch-kernel.sh: VM_ARCH=$arch: amd64 or armhf" >&2; exit 2 ;;
esac
mkdir -p "$dest"
if ls "$dest"/root/boot/vmlinuz-* >/dev/null 2>&1; then exit 0; fi
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
cd "$dest"
for p in ${extra:+"$extra"} "$pkg"; do
	apt-get download "$p" >/dev/null
	dpkg -x "${p%%:*}"_*.deb root
	rm -f "${p%%:*}"_*.deb
done
ls root/boot/vmlinuz-*
