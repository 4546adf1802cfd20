#!/bin/sh
# Stop and disable the server before its binary goes (Debian passes
# "upgrade" when a new version replaces it: then it keeps running).
set -e
if [ -d /run/systemd/system ] && [ "${1:-remove}" != upgrade ]; then
	systemctl disable --now msdav.service || true
fi
