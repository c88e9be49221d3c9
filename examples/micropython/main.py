# TCPMQ sensor for an ESP8266 (MicroPython): joins Wi-Fi, reports a reading every
# 2 s, prints what the peer reports, and blinks the LED while the peer is offline.
# Copy tcpmq.py and this file to the board (see the README: "Flash a board").

WIFI_SSID = 'my-wifi'
WIFI_PASSWORD = 'my-password'
BROKER_HOST = '192.168.1.10'  # the machine running Node-RED (an ESP32 hotspot broker: '192.168.4.1')
BROKER_PORT = 9999
MY_ID = 1        # this board's mailbox: examples/esp8266-sensor-to-gauge.json shows device 1
PEER_ID = -1     # the mailbox this board reads ('cmd' for examples/command-mailbox.json)
REPLY_FORMAT = 'text'  # the broker's reply format: 'text' (default) or 'json'
REPORT_EVERY = 2  # seconds between reports
OFFLINE_AFTER = 8  # None replies in a row before the peer counts as offline
LED_PIN = 2       # the ESP8266's blue LED (on when the pin is low)
DHT_PIN = None    # a DHT11 data pin (e.g. 4 for D2); None = send a random value

import gc
import time

import machine
import network

from tcpmq import TcpmqClient

led = machine.Pin(LED_PIN, machine.Pin.OUT)
led.value(1)  # off


def join_wifi():
    network.WLAN(network.AP_IF).active(False)
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        print('joining', WIFI_SSID)
        wlan.connect(WIFI_SSID, WIFI_PASSWORD)
        for _ in range(60):  # up to 30 s, the LED flickering meanwhile
            if wlan.isconnected():
                break
            led.value(not led.value())
            time.sleep_ms(500)
    led.value(1)
    print('wifi', wlan.isconnected(), wlan.ifconfig())
    return wlan  # the ESP8266 rejoins by itself if the network drops later


if DHT_PIN is None:
    import random

    def read_sensor():
        return '60%d' % random.getrandbits(3)  # like the field code: '600' .. '607'
else:
    import dht
    sensor = dht.DHT11(machine.Pin(DHT_PIN))
    last_reading = [None]

    def read_sensor():
        try:
            sensor.measure()
            last_reading[0] = str(sensor.temperature())
        except OSError:
            pass  # a failed reading: report the last good one again
        return last_reading[0]


def wait_and_blink(seconds, blink):
    for _ in range(seconds * 4):
        if blink:
            led.value(not led.value())
        time.sleep_ms(250)
    led.value(1)


def main():
    wlan = join_wifi()
    client = TcpmqClient(BROKER_HOST, BROKER_PORT, device_id=MY_ID,
                         offline_after=OFFLINE_AFTER, dialect=REPLY_FORMAT)
    was_online = True
    try:
        while True:
            reply = client.exchange(PEER_ID, read_sensor())
            if reply is not None:
                print('peer', PEER_ID, 'says', reply)
            elif not wlan.isconnected():
                print('wifi down, waiting')
            elif not client.connected:
                print('broker not reachable:', client.last_error)
            online = client.is_online(PEER_ID)
            if online != was_online:
                print('peer', PEER_ID, 'is', 'online' if online else 'OFFLINE')
                was_online = online
            gc.collect()
            wait_and_blink(REPORT_EVERY, not online)
    finally:  # Ctrl-C in the REPL or Thonny's stop button
        client.close()
        led.value(1)


main()
