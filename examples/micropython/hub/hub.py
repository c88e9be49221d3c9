# TCPMQ hub for an ESP32 running MicroPython: the hotspot broker that the field's
# ESP8266 boards connect to (192.168.4.1:9999), serving them exactly as the wire
# contract says (docs/PROTOCOL.md), from one asyncio loop. With WIFI_SSID and
# MQTT_HOST set it also joins the home Wi-Fi and shares its boards with the fleet
# through MQTT, as one more gateway (docs/PROTOCOL.md, sharing).
#
# One module per job, each small enough for a board to compile (docs/hub.md),
# imported in this order by main.py:
#   hub_settings  settings (hub_config.py overrides them) and the console
#   hub_net       the Wi-Fi, the clock and the chip id (tests replace it)
#   hub_wire      frames, ids, replies, the clock
#   hub_store     mailboxes and the device table
#   hub_conn      connections and admission
#   hub_ha        Home Assistant discovery
#   hub_fleet     sharing through MQTT: the fleet's rules
#   hub_mqtt      the MQTT client
#   hub           this file: starts the rest, sweeps, prints the status

import gc
import time

import asyncio
import hub_net

import hub_settings
from hub_settings import SHARING, STATUS_EVERY, console
from hub_store import Store
from hub_conn import Server

_ticks = time.ticks_ms
_diff = time.ticks_diff


class Hub:
    def __init__(self):
        self.store = Store(hub_settings.GATEWAY or ('hub-' + hub_net.unique_id()))
        self.server = Server(self.store)
        self.fleet = None
        self.uplink = None
        if SHARING:
            from hub_fleet import Fleet
            from hub_mqtt import Uplink

            self.store.fleet = self.fleet = Fleet(self.store, self.server)
            self.uplink = Uplink(self.fleet)

    def status(self):
        gc.collect()
        store = self.store
        c = store.counters
        uplink = self.uplink
        console.log(
            'status: %d boards online of %d, %d connections, %d requests, %d protocol errors, %d stations, uplink %s, mqtt %s, heap %d free'
            % (
                store.online(),
                len(store.devices),
                len(self.server.connections),
                c['requests'],
                c['protocolErrors'],
                hub_net.stations(),
                'up' if hub_net.uplink_up() else 'down',
                'off' if uplink is None else ('connected' if self.fleet.sharing else uplink.state),
                gc.mem_free(),
            )
        )

    async def sweeper(self):
        last = _ticks()
        status_at = 0
        purge_at = 0
        while True:
            await asyncio.sleep_ms(200)
            try:
                now = _ticks()
                console.uptime += _diff(now, last)
                last = now
                self.store.sweep(now)
                self.server.sweep(now)
                if console.uptime >= purge_at:
                    purge_at = console.uptime + 10000
                    self.store.purge()
                if console.uptime >= status_at:
                    status_at = console.uptime + STATUS_EVERY * 1000
                    self.status()
            except Exception as e:
                console.warn('sweep: %r' % e)

    async def main(self):
        await self.server.start()
        console.log('TCPMQ hub %s listening on %s:%d, %s replies' % (self.store.gateway, hub_settings.HOST, hub_settings.PORT, hub_settings.REPLY_FORMAT))
        if self.uplink is not None:
            asyncio.create_task(self.uplink.run())
        await self.sweeper()


def _exception_handler(loop, context):
    # A task ended with an exception nobody awaited: said once, the loop goes on.
    print('hub: unexpected %r' % (context.get('exception'),))


def run():
    """Starts the hub; returns only if it cannot listen (the error says why)."""
    hub_settings.show()
    hub_settings.check()
    for line in hub_net.start(hub_settings.AP_SSID, hub_settings.AP_PASSWORD, hub_settings.WIFI_SSID, hub_settings.WIFI_PASSWORD):
        print(line)
    hub = Hub()
    gc.collect()
    print('heap: %d bytes free, %d in use' % (gc.mem_free(), gc.mem_alloc()))
    asyncio.get_event_loop().set_exception_handler(_exception_handler)
    try:
        asyncio.run(hub.main())
    finally:
        asyncio.new_event_loop()
