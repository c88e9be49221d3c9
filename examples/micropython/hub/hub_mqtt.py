# The hub's MQTT client: MQTT 3.1.1 over asyncio streams (connect with a will,
# subscribe, publish QoS 0, ping), so that no step blocks the boards' loop.
#
# Why not umqtt.simple: its connect() makes a blocking TCP connect (on an ESP32 it
# waits 10 s or more for an absent host whatever the socket timeout says) and then
# blocks for CONNACK; subscribe() and check_msg() block for the rest of a packet.
# Each of those can outlast the 8 s a board waits for its reply. Here every wait
# is an await: the only blocking steps left are the DNS lookup of a MQTT_HOST
# given by name (none for an IP address) and NTP (hub_net.sync_clock).

import socket
import time

import asyncio
import hub_net
from micropython import const

from hub_settings import HA_DISCOVERY, MAX_FRAME_BYTES, MQTT_HOST, MQTT_PASSWORD, MQTT_PORT, MQTT_PREFIX, MQTT_USER, NTP_HOST, console, printable
from hub_conn import peer
from hub_ha import gateway_discovery
from hub_wire import clock_is_set, level, text

_ticks = time.ticks_ms
_diff = time.ticks_diff
_OUT_LIMIT = const(8192)  # unpublished bytes after which the connection is given up
_STATE_EVERY = const(30000)  # ms between two gateway state messages
_SYNC_WAIT = const(10000)  # ms to wait for the sync marker before sharing anyway
_KEEPALIVE = const(60)  # s, MQTT keepalive


class Uplink:
    def __init__(self, fleet):
        self.fleet = fleet
        self.state = 'waiting for Wi-Fi'
        self.ip = None  # MQTT_HOST's address, looked up once
        self.next_clock = 0  # uptime (ms) of the next NTP attempt
        self.clock_retry = 30000
        self.last_error = None
        self.received_at = 0
        self.writer = None
        self.max_packet = 2 * MAX_FRAME_BYTES + 1024
        self.sessions = 0

    async def run(self):
        delay = 1000
        failures = 0
        while True:
            wait = 1000
            try:
                if not hub_net.uplink_up():
                    self.state = 'waiting for Wi-Fi'
                    delay = 1000
                elif self.clock():
                    self.state = 'connecting'
                    connected, error = await self.session()
                    if connected:
                        delay = 1000
                        failures = 0
                    if error is not None:
                        raise error
            except Exception as e:
                failures += 1
                if failures % 5 == 0:
                    self.ip = None  # look the name up again
                text = repr(e)
                if text != self.last_error:
                    console.log('MQTT %s:%d: %s; boards are served on, retrying' % (MQTT_HOST, MQTT_PORT, text))
                self.last_error = text
                self.state = 'down'
                wait = delay
                delay = min(delay * 2, 30000)
            await asyncio.sleep_ms(wait)

    def clock(self):
        """Sets the clock from NTP when the uplink comes up and every 6 hours; retries back off to 10 min."""
        uptime = console.uptime  # ms, does not wrap as ticks do
        if uptime >= self.next_clock:
            try:
                hub_net.sync_clock(NTP_HOST)  # blocks: at most ntptime's 1 s timeout, and a DNS lookup for a name
                self.next_clock = uptime + 6 * 3600 * 1000
                self.clock_retry = 30000
                console.log('clock set from %s' % NTP_HOST)
            except Exception as e:
                self.next_clock = uptime + self.clock_retry
                self.clock_retry = min(self.clock_retry * 2, 600000)
                console.log('clock: %s: %r' % (NTP_HOST, e))
        if not clock_is_set():
            self.state = 'waiting for the clock (NTP)'
            return False
        return True

    async def session(self):
        """One MQTT connection until it ends: (whether it had been connected, the error or None)."""
        fleet = self.fleet
        connected = False
        error = None
        if self.ip is None:
            # Blocks for a name (the DNS lookup); an IP address is taken as it is.
            self.ip = peer(socket.getaddrinfo(MQTT_HOST, MQTT_PORT)[0][-1])[0]
        reader, writer = await asyncio.wait_for_ms(asyncio.open_connection(self.ip, MQTT_PORT), 5000)
        sock = writer.s
        receiving = None
        try:
            self.writer = writer
            writer.write(self.connect_packet())
            await asyncio.wait_for_ms(writer.drain(), 5000)
            ack = await asyncio.wait_for_ms(reader.readexactly(4), 5000)
            if ack[0] != 0x20 or ack[3] != 0:
                raise OSError('the MQTT broker refused the connection (code %d)' % ack[3])
            prefix = MQTT_PREFIX + '/'
            own = prefix + 'gateway/' + level(fleet.gateway)
            filters = (prefix + 'mailbox/+', prefix + 'mailbox/+/set', prefix + 'device/+', prefix + 'gateway/+', own + '/send', own + '/close', own + '/sync')
            writer.write(_subscribe_packet(filters))
            self.received_at = _ticks()
            # Reconciling: the retained messages come in first, then the marker; until it is back, nothing of ours goes out.
            self.sessions += 1
            marker = ('%d-%d' % (self.sessions, _ticks())).encode()
            fleet.link_up(marker)
            receiving = asyncio.create_task(self.receive(reader))
            connected = True
            self.state = 'connected'
            self.last_error = None
            console.log('MQTT connected to %s:%d, sharing as gateway "%s" under %s' % (MQTT_HOST, MQTT_PORT, fleet.gateway, prefix))
            self.publish(own, fleet.gateway_state(True), True)
            if HA_DISCOVERY:
                topic, config = gateway_discovery(fleet.gateway)
                self.publish(topic, config, True)
            self.publish(own + '/sync', marker, False)
            synced_at = state_at = ping_at = _ticks()
            while not receiving.done():
                await asyncio.sleep_ms(50)
                if not hub_net.uplink_up():
                    raise OSError('the home Wi-Fi is down')
                now = _ticks()
                if fleet.syncing and _diff(now, synced_at) >= _SYNC_WAIT:
                    console.log('MQTT: the sync marker did not come back in %d s; sharing what this hub holds' % (_SYNC_WAIT // 1000))
                    fleet.synced()
                fleet.out(now, self.publish)
                if _diff(now, state_at) >= _STATE_EVERY:
                    state_at = now
                    self.publish(own, fleet.gateway_state(True), True)
                if _diff(now, ping_at) >= _KEEPALIVE * 500:
                    ping_at = now
                    writer.write(b'\xc0\x00')  # PINGREQ
                if _diff(now, self.received_at) > _KEEPALIVE * 1500:
                    raise OSError('no answer from the MQTT broker for %d s' % (_KEEPALIVE * 3 // 2))
                pending = writer.out_buf
                if pending:
                    if len(pending) > _OUT_LIMIT:
                        raise OSError('the MQTT broker reads too slowly')
                    await asyncio.wait_for_ms(writer.drain(), 5000)
            error = OSError('the MQTT broker closed the connection')
        except Exception as e:
            error = e
        finally:
            self.writer = None
            if receiving is not None and not receiving.done():
                receiving.cancel()
            try:
                sock.close()
            except Exception:
                pass
            if fleet.sharing:
                fleet.link_down()
                console.log('MQTT connection lost; boards are served on, reconnecting')
        return connected, error

    def publish(self, topic, payload, retain):
        if type(payload) is str:
            payload = payload.encode()  # MQTT counts bytes, not characters
        self.writer.write(_packet(0x31 if retain else 0x30, _string(topic.encode()) + payload))
        self.fleet.store.counters['published'] += 1

    async def receive(self, reader):
        """Reads packets until the connection ends; hands PUBLISHes to the fleet."""
        fleet = self.fleet
        try:
            while True:
                head = (await reader.readexactly(1))[0]
                size = 0
                shift = 0
                while True:
                    b = (await reader.readexactly(1))[0]
                    size |= (b & 127) << shift
                    if not b & 128:
                        break
                    shift += 7
                    if shift > 21:
                        raise OSError('a malformed MQTT packet')
                self.received_at = _ticks()
                if size > self.max_packet:
                    first = await reader.readexactly(512)
                    size -= 512
                    while size > 0:  # too long for this hub: skipped
                        size -= len(await reader.readexactly(min(size, 512)))
                    topic = first[2 : 2 + (first[0] << 8 | first[1])] if head & 0xF0 == 0x30 else b'?'
                    console.warn('MQTT %s refused: a message longer than %d bytes' % (printable(text(topic)), self.max_packet))
                    continue
                body = await reader.readexactly(size) if size else b''
                if head & 0xF0 != 0x30:
                    continue  # SUBACK, PINGRESP
                length = body[0] << 8 | body[1]
                topic = text(body[2 : 2 + length])
                start = 2 + length + (2 if head & 6 else 0)
                try:
                    fleet.take(topic, memoryview(body)[start:])
                except Exception as e:
                    console.warn('sharing: %s: %r' % (printable(topic), e))
        except Exception:
            pass  # the connection ended: the session sees this task done

    def connect_packet(self):
        fleet = self.fleet
        client = 'tcpmq-hub-' + ''.join(c if c.isalpha() or c.isdigit() or c in '-_' else '_' for c in fleet.gateway)
        will_topic = (MQTT_PREFIX + '/gateway/' + level(fleet.gateway)).encode()
        will = fleet.gateway_state(False).encode()
        flags = 0x02 | 0x04 | 0x08 | 0x20  # clean session, a will with QoS 1, retained
        payload = _string(client.encode()) + _string(will_topic) + _string(will)
        if MQTT_USER:
            flags |= 0x80
            payload += _string(MQTT_USER.encode())
            if MQTT_PASSWORD:
                flags |= 0x40
                payload += _string(MQTT_PASSWORD.encode())
        variable = b'\x00\x04MQTT\x04' + bytes((flags, _KEEPALIVE >> 8, _KEEPALIVE & 255))
        return _packet(0x10, variable + payload)


def _string(data):
    return bytes((len(data) >> 8, len(data) & 255)) + data


def _packet(head, body):
    size = len(body)
    length = bytearray()
    while True:
        byte = size & 127
        size >>= 7
        length.append(byte | 128 if size else byte)
        if not size:
            break
    return bytes((head,)) + bytes(length) + body


def _subscribe_packet(filters):
    body = b'\x00\x01'  # packet id 1
    for topic in filters:
        body += _string(topic.encode()) + b'\x00'
    return _packet(0x82, body)
