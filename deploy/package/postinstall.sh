#!/bin/sh
# msdav is not enabled on install: set up /etc/msdav/msdav.toml (the gadget,
# the store) first, then systemctl enable --now msdav. An upgrade restarts a
# running server on the new binary.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl try-restart msdav.service || true
fi
