#!/usr/bin/env bash
# Installs the Debian packages msdav's full suite needs (make test, make
# vmtest, make vmtest-armhf, make crosstest, make fuzz): make deps, and
# .ci/run on a fresh machine. As root. Already installed ones are skipped.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# One concern a line, so branches that add packages merge cleanly.
pkgs=(litmus rclone cadaver davfs2 fuse3 e2fsprogs dosfstools mtools fdisk strace
      qemu-system-x86 busybox-static cpio xorriso sg3-utils
      apache2
      curl
      zstd xz-utils bzip2
      python3-sushy redfishtool
      exfatprogs
      # case-insensitive parts inside the store (the kernel may lack vfat/exfat)
      exfat-fuse fusefat
      genisoimage
      # TestSystemdVM boots the guest with this host's systemd as PID 1
      systemd
      # TestFirmwareBootVM: SeaBIOS and OVMF in a second qemu boot from the
      # drive through usbredir; binutils assembles the BIOS boot program
      binutils usbredirect ovmf
      # the host's share of the libraries Samba's smbd loads in the CIFS VM test
      libgnutls30 libkrb5-3 libgssapi-krb5-2 libsasl2-2 libtirpc3 libdbus-1-3 libsystemd0 libbsd0 libacl1
      chromium
      # make crosstest: the unit tests of arm (v6, v7), arm64 and riscv64
      # under qemu user mode
      qemu-user
      # make vmtest-armhf: Debian's armhf kernel in qemu -M virt
      qemu-system-arm)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
