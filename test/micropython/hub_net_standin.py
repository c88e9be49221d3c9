# Stands in for examples/micropython/hub/hub_net.py when test/micropython/hub.test.js
# runs hub.py on MicroPython's unix port: no radio, the host's clock. The home
# Wi-Fi counts as joined when WIFI_SSID is set and no file named "uplink-down"
# is in the working directory (the test creates it to cut the uplink).

import os

_wifi = False


def start(ap_ssid, ap_password, wifi_ssid, wifi_password):
    global _wifi
    _wifi = bool(wifi_ssid)
    return ['stand-in network: hotspot %r, home Wi-Fi %r' % (ap_ssid, wifi_ssid)]


def uplink_up():
    if not _wifi:
        return False
    try:
        os.stat('uplink-down')
        return False
    except OSError:
        return True


def stations():
    return 0


def sync_clock(host):
    pass  # the host's clock is set


def unique_id():
    return 'test'
