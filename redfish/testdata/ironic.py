# Drives msdav's Redfish service the way OpenStack Ironic's
# redfish-virtual-media boot interface does, through Debian's python3-sushy.
# Usage: ironic.py BASE_URL IMAGE_URL USER PASSWORD. Prints one line per step.
import sys

import sushy
from sushy.resources.manager import constants as mgr
from sushy.resources.system import constants as sys_cons

base, image, user, password = sys.argv[1:5]
conn = sushy.Sushy(base + "/redfish/v1", username=user, password=password)
print("ROOT", conn.redfish_version)

# Ironic's way in: the System, its Links.ManagedBy, the Manager's media.
system = conn.get_system("/redfish/v1/Systems/0")
managers = system.managers
print("MANAGED_BY", len(managers), managers[0].identity)
media = managers[0].virtual_media.get_members()
cd = [m for m in media if mgr.VirtualMediaType.CD in m.media_types]
print("MEDIA", len(media), "CD-capable", len(cd))
dev = cd[0]
if dev.inserted:
    dev.eject_media()
dev.insert_media(image, inserted=True, write_protected=True)
dev.refresh()
print("INSERTED", dev.inserted, dev.image, dev.image_name, dev.write_protected,
      [t.value for t in dev.media_types])

system.set_system_boot_options(sys_cons.BootSource.CD,
                               enabled=sys_cons.BootSourceOverrideEnabled.ONCE)
system.refresh()
print("BOOT", system.boot.target.value, system.boot.enabled.value)

dev.eject_media()
dev.refresh()
print("EJECTED", dev.inserted, dev.image)

# Without an id, get_manager needs exactly one Manager.
print("MANAGER", conn.get_manager().identity)
