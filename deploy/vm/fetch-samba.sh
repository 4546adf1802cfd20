#!/usr/bin/env bash
# Fetch Debian's Samba file server (smbd) and the libraries of its own it
# loads, unpacked with dpkg -x into $1/samba without installing anything,
# for the CIFS part of the VM tests (vm_test.go copies smbd and what ldd
# resolves into the initramfs; the common libraries come from the host).
# Idempotent.
#
# Why not the kernel's own server, ksmbd: with the kernel fetch-kernel.sh
# fetches (Debian's 6.1.0-56, 6.1.192-2), bookworm's ksmbd-tools 3.4.7 gets
# every tree connect refused (the kernel wants the share config answer's
# payload_sz, which 3.4.7 leaves zero: "failed to connect to IPC (rc=-2)"),
# and with bookworm-backports' 3.5.2 the module oopses in smb2_open on the
# first open of a directory (opinfo_put of a NULL opinfo: no oplock is
# granted on a directory without a v2 lease), so no cifs mount completes.
set -euo pipefail
dest=$(realpath "${1:?usage: fetch-samba.sh DIR}")
out=$dest/samba
if [ -x "$out/usr/sbin/smbd" ]; then exit 0; fi
pkgs=(samba samba-libs libldb2 libtalloc2 libtdb1 libtevent0 libwbclient0 libpopt0
	libcups2 libldap-2.5-0 libavahi-client3 libavahi-common3 libicu72 libjansson4
	libarchive13)
tmp=$(mktemp -d "$dest/samba-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download "${pkgs[@]}" >/dev/null 2>&1; then
	apt-get update -qq
	apt-get download "${pkgs[@]}" >/dev/null
fi
for deb in ./*.deb; do dpkg -x "$deb" root; done
mv root "$out"
ls "$out/usr/sbin/smbd"
