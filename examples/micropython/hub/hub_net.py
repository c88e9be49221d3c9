# The ESP32's side of the TCPMQ hub: the hotspot, the home Wi-Fi, the clock and
# the chip id (network, machine, ntptime). hub.py uses nothing else of the board,
# so tests run hub.py on MicroPython's unix port with a stand-in for this file.

import time

import machine
import network

_ap = None
_sta = None


def start(ap_ssid, ap_password, wifi_ssid, wifi_password):
    """Joins the home Wi-Fi (when wifi_ssid is set), then opens the hotspot.

    The ESP32 has one radio: the hotspot runs on the home network's channel. So
    the home Wi-Fi is joined first (up to 15 s), and the hotspot opens on its
    channel; a hotspot opened first would move when the home Wi-Fi is joined,
    and the boards on it would drop for a moment. Returns lines to print.
    """
    global _ap, _sta
    lines = []
    if wifi_ssid:
        _sta = network.WLAN(network.STA_IF)
        _sta.active(True)
        if not _sta.isconnected():
            _sta.connect(wifi_ssid, wifi_password)
            for _ in range(30):
                if _sta.isconnected():
                    break
                time.sleep_ms(500)
        if _sta.isconnected():
            lines.append('home Wi-Fi %r joined: %s' % (wifi_ssid, _sta.ifconfig()[0]))
        else:
            lines.append('home Wi-Fi %r not joined yet: the hub serves its hotspot and keeps trying' % wifi_ssid)
    else:
        network.WLAN(network.STA_IF).active(False)
    _ap = network.WLAN(network.AP_IF)
    _ap.active(True)
    if ap_password:
        _ap.config(essid=ap_ssid, password=ap_password, authmode=getattr(network, 'AUTH_WPA2_PSK', 3))
    else:
        _ap.config(essid=ap_ssid, authmode=getattr(network, 'AUTH_OPEN', 0))
    try:
        _ap.config(max_clients=10)  # ESP-IDF's most stations on an ESP32 hotspot (its default is 4)
    except Exception:
        lines.append('this firmware cannot set max_clients: the hotspot takes its default number of stations')
    for _ in range(20):
        if _ap.active() and _ap.ifconfig()[0] != '0.0.0.0':
            break
        time.sleep_ms(250)
    lines.append('hotspot %r open: %s' % (ap_ssid, _ap.ifconfig()[0]))
    return lines


def uplink_up():
    """Whether the home Wi-Fi is joined (the ESP32 rejoins it by itself)."""
    return _sta is not None and _sta.isconnected()


def stations():
    """Boards joined to the hotspot now (-1 if the firmware cannot say)."""
    try:
        return len(_ap.status('stations'))
    except Exception:
        return -1


def sync_clock(host):
    """Sets the clock from NTP: blocks for at most ntptime's 1 s timeout (and a DNS lookup)."""
    import ntptime

    ntptime.host = host
    ntptime.timeout = 1
    ntptime.settime()


def unique_id():
    """The end of the chip id, as hex: names the hub when GATEWAY is not set."""
    uid = machine.unique_id()
    return ''.join('%02x' % b for b in uid[-3:])
