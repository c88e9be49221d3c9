# Starts the TCPMQ hub at boot. MicroPython compiles a module when it is first
# imported; one module at a time, with what each compile leaves collected before
# the next, the hub fits a plain ESP32's heap (docs/hub.md, memory).
import gc

import hub_settings

for name in ('hub_net', 'hub_wire', 'hub_store', 'hub_conn', 'hub_ha', 'hub_fleet', 'hub_mqtt', 'hub'):
    __import__(name)
    gc.collect()

import hub

hub.run()
