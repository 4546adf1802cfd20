# Inserts a slow image through Debian's python3-sushy with a 10 s timeout
# on every request (sushy 5.x has one, 60 s by default) and retries a
# timed-out InsertMedia as Ironic does; then the same URL again; then
# another URL the polling way (Prefer: respond-async, sushy's TaskMonitor).
# Usage: slowinsert.py BASE_URL IMAGE_URL OTHER_URL USER PASSWORD
import functools
import sys
import time

import sushy
from sushy import exceptions
from sushy.resources.manager import constants as mgr

base, image, other, user, password = sys.argv[1:6]
conn = sushy.Sushy(base + "/redfish/v1", username=user, password=password)
session = conn._conn._session
session.request = functools.partial(session.request, timeout=10)

system = conn.get_system("/redfish/v1/Systems/0")
media = system.managers[0].virtual_media.get_members()
dev = [m for m in media if mgr.VirtualMediaType.CD in m.media_types][0]

start = time.time()
tries = 0
while True:
    tries += 1
    try:
        dev.insert_media(image, inserted=True, write_protected=True)
        break
    except exceptions.ConnectionError as e:
        print("TIMEOUT", tries, "%.1f" % (time.time() - start), flush=True)
        if tries >= 10:
            raise
dev.refresh()
print("INSERTED", dev.inserted, dev.image, "tries", tries,
      "seconds %.1f" % (time.time() - start), flush=True)

start = time.time()
dev.insert_media(image, inserted=True, write_protected=True)
print("AGAIN seconds %.2f" % (time.time() - start), flush=True)

target = dev._actions.insert_media.target_uri
resp = conn._conn.post(target, data={"Image": other},
                       headers={"Prefer": "respond-async"},
                       blocking=True, timeout=120)
dev.refresh()
print("POLLED", resp.status_code, dev.inserted, dev.image, flush=True)
