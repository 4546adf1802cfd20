#!/usr/bin/env bash
# Fetch Debian's current kernel (vmlinuz + modules) for ARCH (amd64 when
# not given; armhf, arm64) into $1 without installing it: `apt-get download`
# of the real linux-image-X package that the metapackage points at, unpacked
# with dpkg -x. A foreign ARCH also gets that architecture's busybox-static
# (the guest's shell) in $1/busybox. Idempotent.
set -euo pipefail
dest=${1:?usage: fetch-kernel.sh DIR [amd64|armhf|arm64]}
arch=${2:-amd64}
case $arch in
amd64) meta=linux-image-amd64 ;;
armhf) meta=linux-image-armmp ;; # the multiplatform ARMv7 kernel qemu's virt board boots
arm64) meta=linux-image-arm64 ;;
*) echo "fetch-kernel.sh: no kernel for architecture $arch (amd64, armhf, arm64)" >&2; exit 2 ;;
esac
mkdir -p "$dest"
if ls "$dest"/root/boot/vmlinuz-* >/dev/null 2>&1 && { [ "$arch" = amd64 ] || [ -x "$dest/busybox" ]; }; then exit 0; fi
q=$meta
if [ "$arch" != amd64 ]; then
	q=$meta:$arch
	dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
fi
# apt-cache fails while the lists lack this architecture (just added): update then.
pkg=$(apt-cache depends "$q" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || pkg=
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends "$q" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
pkg=${pkg%%:*}
cd "$dest"
if [ "$arch" = amd64 ]; then
	apt-get download "$pkg" >/dev/null
else
	apt-get download "$pkg:$arch" "busybox-static:$arch" >/dev/null
	dpkg -x busybox-static_*.deb bb
	mv bb/bin/busybox busybox
	rm -rf bb busybox-static_*.deb
fi
dpkg -x "$pkg"_*.deb root
rm -f "$pkg"_*.deb
ls root/boot/vmlinuz-*
