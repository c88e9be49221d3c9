# TCPMQ hub for an ESP32 running MicroPython: the hotspot broker that the field's
# ESP8266 boards connect to (192.168.4.1:9999), serving them exactly as the wire
# contract says (docs/PROTOCOL.md), from one asyncio loop. With WIFI_SSID and
# MQTT_HOST set it also joins the home Wi-Fi and shares its boards with the fleet
# through MQTT, as one more gateway (docs/PROTOCOL.md, sharing).
#
# Copy hub.py, hub_net.py and main.py to the board (docs/hub.md); put your own
# settings in hub_config.py, e.g.  AP_PASSWORD = 'my-hotspot-pw'.
#
# Modules: socket, asyncio, json, time, gc and binascii from stock MicroPython;
# the Wi-Fi, the clock and the chip id come through hub_net.py (tests replace it).

# ---- settings (override any of them in hub_config.py) -----------------------

PORT = 9999  # the TCPMQ port the boards connect to
HOST = '0.0.0.0'  # listen on the hotspot and on the home Wi-Fi
REPLY_FORMAT = 'text'  # 'text' (the field's ESP32 broker: bare strings, None) or 'json'
AP_SSID = 'tcpmq-hub'  # the hotspot the boards join
AP_PASSWORD = 'tcpmq-hub'  # 8 characters or more (WPA2); '' = an open hotspot
WIFI_SSID = ''  # the home Wi-Fi to join as well; '' = hotspot only
WIFI_PASSWORD = ''
MQTT_HOST = ''  # the fleet's MQTT broker (an IP address: no DNS lookup); '' = no sharing
MQTT_PORT = 1883
MQTT_USER = ''  # '' = anonymous
MQTT_PASSWORD = ''
MQTT_PREFIX = 'tcpmq'  # the fleet's topic prefix
GATEWAY = ''  # this hub's name in the fleet; '' = 'hub-' and the end of the chip id
OFFLINE_AFTER = 30  # seconds of silence after which a board is offline and its mailbox reads None
IDLE_TIMEOUT = 60  # seconds without a request before a connection is closed; 0 = never
MAX_CONNECTIONS = 7  # connections at once (a stock ESP32 firmware has 10 sockets, see docs/hub.md)
MAX_BOARDS = 32  # boards in the device table; the hub holds at most 2 * MAX_BOARDS mailboxes
MAX_FRAME_BYTES = 2048  # the longest frame or line; a longer one closes its connection
HA_DISCOVERY = False  # publish Home Assistant MQTT discovery for each board
NTP_HOST = 'pool.ntp.org'  # where the clock is set from once the home Wi-Fi is up
STATUS_EVERY = 60  # seconds between status lines on the serial console

try:
    from hub_config import *  # noqa: F401,F403  (the user's own settings)
except ImportError:
    pass

# ---- the rest needs no changes --------------------------------------------------

import gc
import json
import socket
import sys
import time

import asyncio
import hub_net

try:
    from micropython import const
except ImportError:  # CPython, for a syntax check

    def const(value):
        return value


VERSION = '0.1.0'

_ticks = time.ticks_ms
_diff = time.ticks_diff

# MicroPython's epoch is 2000 on some ports: writtenAt is ms since 1970 everywhere.
_EPOCH_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0
if hasattr(time, 'time_ns'):

    def wall_ms():
        return time.time_ns() // 1000000 + _EPOCH_MS

else:

    def wall_ms():
        return int(time.time()) * 1000 + _EPOCH_MS


def _clock_is_set():
    # Before NTP an ESP32 starts at its epoch: times from then would lose every
    # last-writer-wins comparison in the fleet and read as long expired.
    return wall_ms() > 1700000000000


_NONE = b'None'
_NULL = b'null'

# A mailbox: [value, writtenAt (wall ms), writer, expiresAt (wall ms or None),
# gateway (None: written here), deadline (ticks, or None), reply bytes (cached)].
_V = const(0)
_AT = const(1)
_BY = const(2)
_EXP = const(3)
_GW = const(4)
_DL = const(5)
_R = const(6)
_DEVICE = 'device'
_FLOW = 'flow'

# A board: [online, last request (ticks), requests, address, port, connection, want,
# its device topic's last publish (ticks, or None), its first report was a number].
_ON = const(0)
_LAST = const(1)
_COUNT = const(2)
_ADDR = const(3)
_PORT = const(4)
_CONN = const(5)
_WANT = const(6)
_PUB = const(7)
_NUMERIC = const(8)

# Frame reader modes (docs/PROTOCOL.md, frames and plain text).
_BETWEEN = const(0)
_JSON = const(1)
_STRAY = const(2)
_RAW = const(3)

_MAX_DEPTH = const(33)  # the frame's array and a payload nested 32 levels
_MAX_ID_BYTES = const(128)
_READ_SIZE = const(256)  # bytes per socket read
_OUT_LIMIT = const(8192)  # unread replies after which a connection is closed
_PUBLISH_EVERY = const(250)  # ms between two publishes of one id
_STATE_EVERY = const(30000)  # ms between two gateway state messages
_KEEPALIVE = const(60)  # s, MQTT keepalive
_WARNINGS_PER_MINUTE = const(20)
_LONG = 'too long'  # marks an id over _MAX_ID_BYTES

try:
    json.dumps(0, separators=(',', ':'))

    def _dumps(value):
        return json.dumps(value, separators=(',', ':'))

except TypeError:  # an old firmware: spaces after ',' and ':'
    _dumps = json.dumps


def _encode_reply(value, as_json):
    """A mailbox's reply bytes (docs/PROTOCOL.md, replies)."""
    kind = type(value)
    if kind is str:
        if as_json:
            return _dumps(value).encode()
        return value.encode() if value else _NONE
    if kind is bytes:  # a Buffer a flow wrote, taken in from the fleet
        if as_json:
            return _dumps(_text(value)).encode()
        return value if value else _NONE
    return _dumps(value).encode()


def _text(data):
    try:
        return str(data, 'utf-8')
    except UnicodeError:
        return ''.join(chr(b) if b < 128 else '\ufffd' for b in data)


def _id(value):
    """The canonical text of a device id, None if it is not one, _LONG if too long."""
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int:
        text = str(value)
    elif kind is float:
        if value - value != 0:
            return None  # 1e400 reads as infinity: not an id
        if -1e21 < value < 1e21 and value == int(value):
            text = str(int(value))  # 1.0 and 1e0 are 1
        else:
            text = repr(value)
    else:
        return None  # null, true, objects, arrays
    if len(text) > 42 and len(text.encode()) > _MAX_ID_BYTES:
        return _LONG
    return text


def _peer(address):
    """(address, port) of a peer as accept() gives it on an ESP32 or the unix port."""
    if isinstance(address, tuple):
        return str(address[0]), address[1]
    try:
        ip, port = socket.sockaddr(address)[1:3]
        return '.'.join(str(b) for b in ip), port
    except Exception:
        return '?', 0


def _level(device):
    """A device id as one MQTT topic level: '%', '/', '+', '#', NUL and a leading '$' as %XX."""
    if device == '':
        return '%'
    if not ('%' in device or '/' in device or '+' in device or '#' in device or '\0' in device or device[0] == '$'):
        return device
    out = []
    first = True
    for c in device:
        if c in '%/+#\0' or (first and c == '$'):
            out.append('%%%02X' % ord(c))
        else:
            out.append(c)
        first = False
    return ''.join(out)


def _unlevel(level):
    """The id an MQTT topic level names (the inverse of _level)."""
    if level == '%':
        return ''
    if '%' not in level:
        return level
    out = []
    i = 0
    n = len(level)
    while i < n:
        c = level[i]
        if c == '%' and _is_hex(level[i + 1 : i + 3]):
            out.append(chr(int(level[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def _is_hex(two):
    return len(two) == 2 and all(c in '0123456789ABCDEF' for c in two)


def _object_id(device):
    """An id as Home Assistant's object ids allow: letters, digits, '-'; anything else by its code."""
    out = []
    for c in device:
        o = ord(c)
        if 48 <= o <= 57 or 65 <= o <= 90 or 97 <= o <= 122 or o == 45:
            out.append(c)
        else:
            out.append('_%x' % o)
    return ''.join(out)


def _is_number(value):
    """A number, or text that is one ('26.5', '-3'): Home Assistant then shows a numeric sensor."""
    kind = type(value)
    if kind is int or kind is float:
        return True
    if kind is not str or not value:
        return False
    text = value[1:] if value[0] == '-' else value
    whole, dot, fraction = text.partition('.')
    return whole.isdigit() and (not dot or fraction.isdigit())


def _board_topics(device):
    obj = 'tcpmq_' + _object_id(device)
    return tuple('homeassistant/%s/%s/config' % (platform, obj) for platform in ('sensor', 'text', 'switch'))


_ORIGIN = {'name': 'TCPMQ for Node-RED', 'sw_version': VERSION, 'support_url': 'https://github.com/tcpmq/node-red-tcpmq'}
# Any value as Home Assistant's state: text as it is, anything else as JSON, within 255 characters.
_TEXT_VALUE = '{{ (value_json.value if value_json.value is string else value_json.value | tojson)[:255] }}'
# A number, or None (an unknown state) when it is not one.
_NUMBER_VALUE = '{{ value_json.value | float(None) }}'


def _printable(text, limit=60):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + '...'


class Connection:
    """One TCP connection: its frame reader (docs/PROTOCOL.md, frames and plain text)."""

    def __init__(self, hub, number, writer, address, port):
        self.hub = hub
        self.number = number
        self.writer = writer
        self.address = address
        self.port = port
        self.device = None  # the id it last spoke as
        self.active = _ticks()  # the last request or line
        self.task = None
        self.kind = 0  # 0 unknown, 1 TCPMQ frames, 2 plain text (decided by the first byte)
        self.mode = _BETWEEN
        self.depth = 0
        self.deepest = 0
        self.in_string = False
        self.escaped = False
        self.held = None  # the bytes of an unfinished frame or line from earlier reads
        self.lines = False  # a plain-text sender that has ended a line
        self.strayed = False

    def feed(self, buf, n):
        """Reads n bytes of buf; returns False when a frame or line grew past MAX_FRAME_BYTES."""
        hub = self.hub
        view = memoryview(buf)
        i = 0
        start = 0
        mode = self.mode
        while i < n:
            if mode == _BETWEEN:
                b = buf[i]
                if b == 32 or b == 10 or b == 13 or b == 9:
                    i += 1
                    continue
                start = i
                if self.kind == 0:
                    self.kind = 1 if (b == 91 or b == 123 or b == 34) else 2
                if self.kind == 2:
                    mode = _RAW
                elif b == 91 or b == 123:
                    mode = _JSON
                    self.depth = self.deepest = 1
                    self.in_string = self.escaped = False
                    i += 1
                elif b == 34:
                    mode = _JSON
                    self.depth = self.deepest = 0
                    self.in_string = True
                    self.escaped = False
                    i += 1
                else:
                    mode = _STRAY
                    self.strayed = False
                continue
            if mode == _JSON:
                depth = self.depth
                deepest = self.deepest
                in_string = self.in_string
                escaped = self.escaped
                end = -1
                while i < n:
                    b = buf[i]
                    if in_string:
                        if b < 32:  # a control byte ends the frame: it will not parse
                            end = i
                            break
                        if escaped:
                            escaped = False
                        elif b == 92:
                            escaped = True
                        elif b == 34:
                            in_string = False
                            if depth == 0:
                                end = i + 1
                                break
                    elif b == 34:
                        in_string = True
                    elif b == 91 or b == 123:
                        depth += 1
                        if depth > deepest:
                            deepest = depth
                    elif b == 93 or b == 125:
                        depth -= 1
                        if depth == 0:
                            end = i + 1
                            break
                    i += 1
                if end < 0:
                    self.depth = depth
                    self.deepest = deepest
                    self.in_string = in_string
                    self.escaped = escaped
                    break
                frame = self._take(view, start, end)
                if frame is None:
                    return False
                mode = _BETWEEN
                self.mode = mode
                i = end
                hub.frame(self, frame, deepest)
                continue
            if mode == _STRAY:
                # Bytes that cannot start a frame: up to the next newline or '[', one report a run.
                j = i
                while j < n and buf[j] != 10 and buf[j] != 91:
                    j += 1
                if not self.strayed and j > start:
                    self.strayed = True
                    hub.refuse(self, 'bytes outside a frame')
                if j < n:
                    mode = _BETWEEN
                i = j
                continue
            # _RAW: a plain-text connection; each line, or else each read, is one message.
            j = i
            while j < n and buf[j] != 10:
                j += 1
            if j < n:
                self.lines = True
                end = j - 1 if j > start and buf[j - 1] == 13 else j
                line = self._take(view, start, end)
                if line is None:
                    return False
                i = j + 1
                mode = _BETWEEN
                hub.raw(self, line)
            elif not self.lines:
                line = self._take(view, start, n)
                if line is None:
                    return False
                i = n
                mode = _BETWEEN
                hub.raw(self, line)
            else:
                i = n
                break
        self.mode = mode
        if mode == _JSON or mode == _RAW:
            held = self.held
            size = (len(held) if held else 0) + n - start
            if size > MAX_FRAME_BYTES:
                return self._oversize(size)
            if held is None:
                self.held = held = bytearray()
            held.extend(view[start:n])
        return True

    def _take(self, view, start, end):
        """The frame view[start:end] after any held bytes; None if it is too long."""
        held = self.held
        if held is None:
            if end - start > MAX_FRAME_BYTES:
                return self._oversize(end - start)
            return view[start:end]
        if len(held) + end - start > MAX_FRAME_BYTES:
            return self._oversize(len(held) + end - start)
        held.extend(view[start:end])
        self.held = None
        return held

    def _oversize(self, size):
        self.held = None
        self.hub.counters['oversize'] += 1
        self.hub.warn('%s:%d sent %d bytes without ending a frame (MAX_FRAME_BYTES %d): closed' % (self.address, self.port, size, MAX_FRAME_BYTES))
        return None

    def send(self, data):
        self.writer.write(data)  # one socket write when the socket takes it (it nearly always does)


class Hub:
    def __init__(self):
        self.as_json = REPLY_FORMAT == 'json'
        self.empty = _NULL if self.as_json else _NONE
        self.gateway = GATEWAY or ('hub-' + hub_net.unique_id())
        self.boxes = {}  # id -> mailbox
        self.devices = {}  # id -> board
        self.connections = {}  # number -> Connection
        self.next_number = 1
        self.counters = {
            'requests': 0,
            'protocolErrors': 0,
            'oversize': 0,
            'connections': 0,
            'refusedConnections': 0,
            'capacityRefused': 0,
            'idleClosed': 0,
            'published': 0,
            'received': 0,
        }
        self.uptime = 0  # ms, summed by the sweeper (ticks wrap)
        self.warned = 0
        self.warn_minute = 0
        self.link = None  # the MQTT uplink, when sharing
        self.sharing = False  # connected to the fleet's MQTT broker now
        self.dirty_boxes = set()
        self.dirty_devices = set()
        self.outbox = []  # (topic, payload, retain) to publish as they are: raw lines, removals
        self.discovered = set()

    # ---- console ----------------------------------------------------------

    def log(self, text):
        print('[%8.1f] %s' % (self.uptime / 1000, text))

    def warn(self, text):
        """What devices cause: at most _WARNINGS_PER_MINUTE lines a minute."""
        minute = self.uptime // 60000
        if minute != self.warn_minute:
            if self.warned > _WARNINGS_PER_MINUTE:
                self.log('%d more warnings in the last minute were not shown' % (self.warned - _WARNINGS_PER_MINUTE))
            self.warn_minute = minute
            self.warned = 0
        self.warned += 1
        if self.warned <= _WARNINGS_PER_MINUTE:
            self.log(text)

    def status(self):
        gc.collect()
        online = 0
        for board in self.devices.values():
            if board[_ON]:
                online += 1
        c = self.counters
        link = self.link
        self.log(
            'status: %d boards online of %d, %d connections, %d requests, %d protocol errors, %d stations, uplink %s, mqtt %s, heap %d free'
            % (
                online,
                len(self.devices),
                len(self.connections),
                c['requests'],
                c['protocolErrors'],
                hub_net.stations(),
                'up' if hub_net.uplink_up() else 'down',
                'off' if link is None else ('connected' if self.sharing else link.state),
                gc.mem_free(),
            )
        )

    # ---- mailboxes ----------------------------------------------------------

    def read(self, device, now):
        """The live mailbox of device, or None (an expired one is dropped)."""
        box = self.boxes.get(device)
        if box is None:
            return None
        deadline = box[_DL]
        if deadline is not None:
            if _diff(now, deadline) >= 0:
                del self.boxes[device]
                return None
        elif box[_EXP] is not None and wall_ms() >= box[_EXP]:
            del self.boxes[device]
            return None
        return box

    def reply(self, device, now):
        box = self.read(device, now)
        if box is None:
            return self.empty
        reply = box[_R]
        if reply is None:
            reply = box[_R] = _encode_reply(box[_V], self.as_json)
        return reply

    def room_for(self, device, own):
        """Whether mailbox device can be written: it exists or there is room (own writes make room)."""
        boxes = self.boxes
        if device in boxes or len(boxes) < 2 * MAX_BOARDS:
            return True
        self.purge()
        if len(boxes) < 2 * MAX_BOARDS:
            return True
        if not own:
            return False
        for other in boxes:
            if boxes[other][_GW] is not None:  # one taken in from the fleet
                del boxes[other]
                return True
        return False

    def write(self, device, value, writer, written_at, expires_at=None, deadline=None, gateway=None):
        box = self.boxes.get(device)
        if box is None:
            self.boxes[device] = [value, written_at, writer, expires_at, gateway, deadline, None]
        else:  # in place: a board writes its mailbox every few seconds for months
            box[_V] = value
            box[_AT] = written_at
            box[_BY] = writer
            box[_EXP] = expires_at
            box[_GW] = gateway
            box[_DL] = deadline
            box[_R] = None

    def write_own(self, device, value):
        """A write from outside the boards (a /set), as a flow writes: it does not expire."""
        if value is None:
            if self.boxes.pop(device, None) is not None or self.sharing:
                self.changed(device)
            return
        if not self.room_for(device, True):
            return
        self.write(device, value, _FLOW, wall_ms())
        self.changed(device)

    def changed(self, device):
        if self.sharing:
            self.dirty_boxes.add(device)

    def purge(self):
        now = _ticks()
        for device in list(self.boxes):
            self.read(device, now)

    # ---- requests -------------------------------------------------------------

    def frame(self, conn, data, deepest):
        """A complete frame: answered at once (docs/PROTOCOL.md, requests)."""
        try:
            value = json.loads(data)
        except MemoryError:
            raise
        except Exception:
            return self.refuse(conn, 'invalid JSON')
        if type(value) is not list or len(value) != 3:
            return self.refuse(conn, 'not a three-element array [from, want, payload]')
        sender = _id(value[0])
        want = _id(value[1])
        if sender is None or want is None:
            return self.refuse(conn, 'device ids must be numbers or strings')
        if sender is _LONG or want is _LONG:
            return self.refuse(conn, 'device ids are at most %d bytes' % _MAX_ID_BYTES)
        if deepest > _MAX_DEPTH:
            return self.refuse(conn, 'payload nested deeper than 32 levels')
        conn.send(self.request(conn, sender, want, value[2]))

    def request(self, conn, sender, want, payload):
        now = _ticks()
        conn.active = now
        board = self.devices.get(sender)
        if board is None:
            if not self.admit():
                # Every record is a board online: this one is answered, not recorded.
                self.counters['capacityRefused'] += 1
                self.warn('device %s not recorded: %d boards (MAX_BOARDS), all online' % (_printable(sender), MAX_BOARDS))
                return self.reply(want, now)
            board = [False, now, 0, conn.address, conn.port, conn.number, want, None, _is_number(payload)]
            self.devices[sender] = board
        if not self.room_for(sender, True):
            return self.reply(want, now)
        self.counters['requests'] += 1
        self.write(sender, payload, _DEVICE, wall_ms(), None, time.ticks_add(now, OFFLINE_AFTER * 1000))
        board[_LAST] = now
        board[_COUNT] += 1
        board[_ADDR] = conn.address
        board[_PORT] = conn.port
        board[_CONN] = conn.number
        board[_WANT] = want
        conn.device = sender
        if self.sharing:
            self.dirty_boxes.add(sender)
            # A board reporting on: its device topic's lastSeen stays within OFFLINE_AFTER / 2 of the truth.
            if board[_PUB] is not None and _diff(now, board[_PUB]) >= OFFLINE_AFTER * 500:
                self.dirty_devices.add(sender)
        if not board[_ON]:
            board[_ON] = True
            self.warn('device %s online from %s:%d' % (_printable(sender), conn.address, conn.port))
            if self.sharing:
                self.dirty_devices.add(sender)
        return self.reply(want, now)

    def admit(self):
        """Room in the device table for a new board: a free record, or the one offline longest."""
        devices = self.devices
        if len(devices) < MAX_BOARDS:
            return True
        oldest = None
        now = _ticks()
        for device in devices:
            board = devices[device]
            if not board[_ON] and (oldest is None or _diff(now, board[_LAST]) > _diff(now, devices[oldest][_LAST])):
                oldest = device
        if oldest is None:
            return False
        del devices[oldest]
        if oldest in self.discovered:  # Home Assistant forgets it too
            self.discovered.discard(oldest)
            if self.sharing:
                for topic in _board_topics(oldest):
                    self.outbox.append((topic, '', True))
        return True

    def refuse(self, conn, reason):
        """A protocol error: no reply, no mailbox touched, the connection stays."""
        self.counters['protocolErrors'] += 1
        self.warn('protocol error from %s:%d: %s' % (conn.address, conn.port, reason))

    def raw(self, conn, line):
        """A line (or chunk) of a plain-text connection: shared on <prefix>/raw/<gateway>."""
        conn.active = _ticks()
        if self.sharing and len(self.outbox) < 16:
            data = bytes(line)
            try:
                text = str(data, 'utf-8')
                message = {'data': text}
            except UnicodeError:
                import binascii

                message = {'data': binascii.b2a_base64(data)[:-1].decode(), 'buffer': True}
            message['gateway'] = self.gateway
            message['connectionId'] = conn.number
            message['remoteAddress'] = conn.address
            message['remotePort'] = conn.port
            self.outbox.append(('%s/raw/%s' % (MQTT_PREFIX, _level(self.gateway)), _dumps(message), False))

    # ---- connections ----------------------------------------------------------

    async def serve(self, reader, writer):
        sock = writer.s
        address, port = _peer(writer.get_extra_info('peername'))
        if len(self.connections) >= MAX_CONNECTIONS:
            self.counters['refusedConnections'] += 1
            self.warn('%s:%d refused: %d connections open (MAX_CONNECTIONS)' % (address, port, MAX_CONNECTIONS))
            sock.close()
            return
        number = self.next_number
        self.next_number += 1
        self.counters['connections'] += 1
        conn = Connection(self, number, writer, address, port)
        conn.task = asyncio.current_task()
        self.connections[number] = conn
        buf = bytearray(_READ_SIZE)
        why = None
        try:
            while True:
                n = await reader.readinto(buf)
                if n is None:
                    continue
                if n == 0:
                    break
                if not conn.feed(buf, n):
                    break
                pending = writer.out_buf
                if pending:
                    if len(pending) > _OUT_LIMIT:
                        why = 'left %d bytes of replies unread' % len(pending)
                        break
                    await writer.drain()
        except asyncio.CancelledError:
            pass  # closed by the hub: idle, or a close command
        except MemoryError:
            why = 'out of memory'
        except Exception as e:
            why = repr(e)
        finally:
            self.connections.pop(number, None)
            conn.held = None
            try:
                sock.close()
            except Exception:
                pass
        if why:
            self.warn('%s:%d closed: %s' % (address, port, why))
            if why == 'out of memory':
                gc.collect()

    def close_connections(self, target):
        for conn in self.matching(target):
            task = conn.task
            conn.task = None
            if task is not None:
                task.cancel()

    def send_to(self, target, data):
        for conn in self.matching(target):
            try:
                conn.send(data)
            except Exception as e:
                self.warn('send to %s:%d failed: %r' % (conn.address, conn.port, e))

    def matching(self, target):
        number = target.get('connectionId')
        device = target.get('device')
        found = []
        for conn in self.connections.values():
            if type(number) is int:
                if conn.number == number:
                    found.append(conn)
            elif device is not None:
                where = '%s:%d' % (conn.address, conn.port)
                if conn.device == str(device) or where == str(device):
                    found.append(conn)
        return found

    # ---- sweeps -------------------------------------------------------------

    def sweep(self, now):
        offline_ms = OFFLINE_AFTER * 1000
        for device in self.devices:
            board = self.devices[device]
            if board[_ON] and _diff(now, board[_LAST]) >= offline_ms:
                board[_ON] = False
                box = self.boxes.get(device)
                if box is not None and box[_BY] == _DEVICE and box[_GW] is None:
                    del self.boxes[device]  # its news expires with it
                self.warn('device %s offline' % _printable(device))
                if self.sharing:
                    self.dirty_devices.add(device)
        if IDLE_TIMEOUT > 0:
            idle_ms = IDLE_TIMEOUT * 1000
            for conn in self.connections.values():
                if _diff(now, conn.active) >= idle_ms and conn.task is not None:
                    self.counters['idleClosed'] += 1
                    self.warn('%s:%d closed: no request for %d s (IDLE_TIMEOUT)' % (conn.address, conn.port, IDLE_TIMEOUT))
                    task = conn.task
                    conn.task = None
                    task.cancel()

    async def sweeper(self):
        last = _ticks()
        status_at = 0
        purge_at = 0
        while True:
            await asyncio.sleep_ms(200)
            try:
                now = _ticks()
                self.uptime += _diff(now, last)
                last = now
                self.sweep(now)
                if self.uptime >= purge_at:
                    purge_at = self.uptime + 10000
                    self.purge()
                if self.uptime >= status_at:
                    status_at = self.uptime + STATUS_EVERY * 1000
                    self.status()
            except Exception as e:
                self.warn('sweep: %r' % e)

    # ---- sharing --------------------------------------------------------------

    def link_state(self, connected):
        """The MQTT connection came up (publish everything this hub owns) or went down."""
        self.sharing = connected
        self.dirty_boxes.clear()
        self.dirty_devices.clear()
        self.outbox = []
        if connected:
            for device in self.boxes:
                if self.boxes[device][_GW] is None:
                    self.dirty_boxes.add(device)
            for device in self.devices:
                self.dirty_devices.add(device)
            self.discovered.clear()

    def mailbox_message(self, device):
        """This hub's mailbox as the fleet sees it, or '' (cleared)."""
        box = self.read(device, _ticks())
        if box is None or box[_GW] is not None:
            return ''
        value = box[_V]
        message = {'writtenAt': box[_AT], 'writer': box[_BY], 'gateway': self.gateway, 'expiresAt': box[_EXP]}
        if type(value) is bytes:
            import binascii

            message['value'] = binascii.b2a_base64(value)[:-1].decode()
            message['buffer'] = True
        else:
            message['value'] = value
        if box[_BY] == _DEVICE:
            message['expiresAt'] = box[_AT] + OFFLINE_AFTER * 1000
            board = self.devices.get(device)
            if board is not None:
                message['want'] = board[_WANT]
                message['connectionId'] = board[_CONN]
                message['remoteAddress'] = board[_ADDR]
                message['remotePort'] = board[_PORT]
        return _dumps(message)

    def device_message(self, device):
        board = self.devices.get(device)
        if board is None:
            return None
        last_seen = wall_ms() - _diff(_ticks(), board[_LAST])
        return _dumps({'online': board[_ON], 'lastSeen': last_seen, 'gateway': self.gateway, 'remoteAddress': board[_ADDR]})

    def discovery_context(self):
        return {'prefix': MQTT_PREFIX, 'gateway': self.gateway, 'version': VERSION, 'model': 'TCPMQ hub (MicroPython)'}

    def discovery(self, device):
        """Home Assistant's discovery for a board, as the other gateways publish it: (topic, payload) pairs."""
        board = self.devices[device]
        numeric = board[_NUMERIC]
        kind = 'sensor' if numeric else 'text'
        level = _level(device)
        obj = 'tcpmq_' + _object_id(device)
        online = "{{ 'online' if value_json.online else 'offline' }}"
        common = {
            'availability': [
                {'topic': '%s/device/%s' % (MQTT_PREFIX, level), 'value_template': online},
                {'topic': '%s/gateway/%s' % (MQTT_PREFIX, _level(self.gateway)), 'value_template': online},
            ],
            'availability_mode': 'all',
            'device': {
                'identifiers': [obj],
                'name': 'TCPMQ %s' % device,
                'manufacturer': 'TCPMQ',
                'model': 'MicroPython board (%s)' % kind,
                'sw_version': VERSION,
                'via_device': 'tcpmq_gateway_' + _object_id(self.gateway),
            },
            'origin': _ORIGIN,
        }
        sensor = {
            'name': None,
            'unique_id': obj,
            'default_entity_id': 'sensor.' + obj,
            'state_topic': '%s/mailbox/%s' % (MQTT_PREFIX, level),
            # A gateway gone without a will: the state is unavailable after OFFLINE_AFTER without news.
            'expire_after': int(OFFLINE_AFTER) + (0 if OFFLINE_AFTER == int(OFFLINE_AFTER) else 1) + 5,
            'value_template': _NUMBER_VALUE if numeric else _TEXT_VALUE,
        }
        if numeric:
            sensor['state_class'] = 'measurement'
        sensor.update(common)
        command = {
            'name': 'Command',
            'unique_id': obj + '_command',
            'default_entity_id': 'text.%s_command' % obj,
            'command_topic': '%s/mailbox/%s/set' % (MQTT_PREFIX, _level(board[_WANT])),
            'max': 255,
        }
        command.update(common)
        sensor_topic, text_topic, switch_topic = _board_topics(device)
        return ((sensor_topic, _dumps(sensor)), (text_topic, _dumps(command)), (switch_topic, ''))

    def gateway_discovery(self):
        obj = 'tcpmq_gateway_' + _object_id(self.gateway)
        config = {
            'name': None,
            'unique_id': obj,
            'default_entity_id': 'binary_sensor.' + obj,
            'device_class': 'connectivity',
            'state_topic': '%s/gateway/%s' % (MQTT_PREFIX, _level(self.gateway)),
            'value_template': "{{ 'ON' if value_json.online else 'OFF' }}",
            'device': {
                'identifiers': [obj],
                'name': 'TCPMQ gateway %s' % self.gateway,
                'manufacturer': 'TCPMQ',
                'model': 'TCPMQ hub (MicroPython)',
                'sw_version': VERSION,
            },
            'origin': _ORIGIN,
        }
        return 'homeassistant/binary_sensor/%s/config' % obj, _dumps(config)

    def gateway_state(self, online):
        state = {'online': online, 'version': VERSION, 'startedAt': wall_ms() - self.uptime, 'platform': 'micropython-hub'}
        if online:
            counters = dict(self.counters)
            counters['openConnections'] = len(self.connections)
            counters['devicesOnline'] = sum(1 for board in self.devices.values() if board[_ON])
            state['counters'] = counters
        return _dumps(state)

    def fleet_message(self, topic, payload):
        """A message of the fleet (docs/PROTOCOL.md, sharing); raises on a bad one."""
        prefix = MQTT_PREFIX + '/'
        if not topic.startswith(prefix):
            return
        levels = topic[len(prefix) :].split('/')
        kind = levels[0]
        count = len(levels)
        self.counters['received'] += 1
        if kind == 'mailbox' and count == 2:
            self.fleet_mailbox(_unlevel(levels[1]), payload)
        elif kind == 'mailbox' and count == 3 and levels[2] == 'set':
            self.fleet_set(_unlevel(levels[1]), payload)
        elif kind == 'device' and count == 2:
            self.fleet_device(_unlevel(levels[1]), payload)
        elif kind == 'gateway' and count == 2:
            self.fleet_gateway(_unlevel(levels[1]), payload)
        elif kind == 'gateway' and count == 3 and _unlevel(levels[1]) == self.gateway:
            command = json.loads(payload)
            if type(command) is not dict:
                raise ValueError('not a command: %s' % _printable(bytes(payload)))
            if levels[2] == 'close':
                self.close_connections(command)
            elif levels[2] == 'send':
                data = command.get('data')
                data = '' if data is None else str(data)
                if command.get('buffer'):
                    import binascii

                    self.send_to(command, binascii.a2b_base64(data))
                else:
                    self.send_to(command, data.encode())

    def fleet_mailbox(self, device, payload):
        """Another gateway's mailbox (or this one's, retained): last writer wins."""
        current = self.read(device, _ticks())
        if not payload:
            # Cleared: a board's own news here stays.
            if current is not None and (current[_GW] is not None or current[_BY] == _FLOW):
                del self.boxes[device]
            return
        shared = json.loads(payload)
        if type(shared) is not dict or type(shared.get('writtenAt')) not in (int, float):
            raise ValueError('not a mailbox message on %s' % _printable(device))
        gateway = shared.get('gateway')
        if type(gateway) is not str:
            raise ValueError('mailbox message without a gateway for %s' % _printable(device))
        writer = _FLOW if shared.get('writer') == _FLOW else _DEVICE
        written_at = shared['writtenAt']
        if gateway == self.gateway and (writer == _DEVICE or current is not None):
            return  # this hub's own, retained: only what a /set wrote is taken back after a restart
        if current is not None:
            ours = current[_GW] or self.gateway
            if current[_AT] > written_at or (current[_AT] == written_at and ours >= gateway):
                return
        now_wall = wall_ms()
        expires_at = written_at + OFFLINE_AFTER * 1000 if writer == _DEVICE else shared.get('expiresAt')
        if expires_at is not None and expires_at <= now_wall:
            if current is not None:
                del self.boxes[device]
            return
        if not self.room_for(device, False):
            return
        value = shared.get('value')
        if shared.get('buffer'):
            import binascii

            value = binascii.a2b_base64(str(value))
        deadline = None
        if writer == _DEVICE:
            deadline = time.ticks_add(_ticks(), int(expires_at - now_wall))
        self.write(device, value, writer, written_at, expires_at, deadline, gateway)
        self.dirty_boxes.discard(device)  # taken in: never published back

    def fleet_set(self, device, payload):
        """Any MQTT client writes a mailbox, as a flow would: JSON if it parses, else the text."""
        text = _text(bytes(payload))
        value = text
        try:
            value = json.loads(text)
        except ValueError:
            pass
        self.write_own(device, None if text == '' else value)

    def fleet_device(self, device, payload):
        if not payload:
            return
        shared = json.loads(payload)
        if type(shared) is not dict or shared.get('gateway') == self.gateway:
            return
        if shared.get('online') is False:
            self.drop_news(device, None)

    def fleet_gateway(self, gateway, payload):
        """A gateway that says it is offline (its will): its boards read None here at once."""
        if gateway == self.gateway or not payload:
            return
        state = json.loads(payload)
        if type(state) is dict and state.get('online') is False:
            for device in list(self.boxes):
                self.drop_news(device, gateway)

    def drop_news(self, device, gateway):
        box = self.boxes.get(device)
        if box is not None and box[_BY] == _DEVICE and box[_GW] is not None and (gateway is None or box[_GW] == gateway):
            del self.boxes[device]

    # ---- the loop --------------------------------------------------------------

    async def main(self):
        try:
            await asyncio.start_server(self.serve, HOST, PORT, MAX_CONNECTIONS)
        except OSError as e:
            raise OSError('cannot listen on %s:%d: %r' % (HOST, PORT, e))
        self.log('TCPMQ hub %s listening on %s:%d, %s replies' % (self.gateway, HOST, PORT, REPLY_FORMAT))
        if MQTT_HOST and WIFI_SSID:
            self.link = Uplink(self)
            asyncio.create_task(self.link.run())
        await self.sweeper()


def _exception_handler(loop, context):
    # A task ended with an exception nobody awaited: said once, the loop goes on.
    print('hub: unexpected %r' % (context.get('exception'),))


class Uplink:
    """The hub's MQTT client: asyncio streams, so that no step blocks the boards' loop.

    Why not umqtt.simple: its connect() makes a blocking TCP connect (on an ESP32 it
    waits 10 s or more for an absent host whatever the socket timeout says) and then
    blocks for CONNACK; subscribe() and check_msg() block for the rest of a packet.
    Each of those can outlast the 8 s a board waits for its reply. Here every wait
    is an await: the only blocking step left is the DNS lookup of a MQTT_HOST given
    by name (none for an IP address).
    """

    def __init__(self, hub):
        self.hub = hub
        self.state = 'waiting for Wi-Fi'
        self.ip = None  # MQTT_HOST's address, looked up once
        self.next_clock = 0  # uptime (ms) of the next NTP attempt
        self.clock_retry = 30000
        self.last_error = None
        self.received_at = 0
        self.published = {}  # id -> ticks of its last publish
        self.writer = None
        self.max_packet = 2 * MAX_FRAME_BYTES + 1024

    async def run(self):
        hub = self.hub
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
                    hub.log('MQTT %s:%d: %s; boards are served on, retrying' % (MQTT_HOST, MQTT_PORT, text))
                self.last_error = text
                self.state = 'down'
                wait = delay
                delay = min(delay * 2, 30000)
            await asyncio.sleep_ms(wait)

    def clock(self):
        """Sets the clock from NTP when the uplink comes up and every 6 hours; retries back off to 10 min."""
        uptime = self.hub.uptime  # ms, does not wrap as ticks do
        if uptime >= self.next_clock:
            try:
                hub_net.sync_clock(NTP_HOST)  # blocks: at most ntptime's 1 s timeout, and a DNS lookup for a name
                self.next_clock = uptime + 6 * 3600 * 1000
                self.clock_retry = 30000
                self.hub.log('clock set from %s' % NTP_HOST)
            except Exception as e:
                self.next_clock = uptime + self.clock_retry
                self.clock_retry = min(self.clock_retry * 2, 600000)
                self.hub.log('clock: %s: %r' % (NTP_HOST, e))
        if not _clock_is_set():
            self.state = 'waiting for the clock (NTP)'
            return False
        return True

    async def session(self):
        """One MQTT connection until it ends: (whether it had been connected, the error or None)."""
        hub = self.hub
        connected = False
        error = None
        if self.ip is None:
            # Blocks for a name (the DNS lookup); an IP address is taken as it is.
            self.ip = _peer(socket.getaddrinfo(MQTT_HOST, MQTT_PORT)[0][-1])[0]
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
            prefix = MQTT_PREFIX
            own = _level(hub.gateway)
            filters = (
                prefix + '/mailbox/+',
                prefix + '/mailbox/+/set',
                prefix + '/device/+',
                prefix + '/gateway/+',
                '%s/gateway/%s/send' % (prefix, own),
                '%s/gateway/%s/close' % (prefix, own),
            )
            writer.write(_subscribe_packet(filters))
            self.received_at = _ticks()
            receiving = asyncio.create_task(self.receive(reader))
            self.published = {}
            hub.link_state(True)
            connected = True
            self.state = 'connected'
            self.last_error = None
            hub.log('MQTT connected to %s:%d, sharing as gateway "%s" under %s/' % (MQTT_HOST, MQTT_PORT, hub.gateway, prefix))
            state_topic = '%s/gateway/%s' % (prefix, own)
            self.publish(state_topic, hub.gateway_state(True), True)
            if HA_DISCOVERY:
                topic, config = hub.gateway_discovery()
                self.publish(topic, config, True)
            state_at = ping_at = _ticks()
            while not receiving.done():
                await asyncio.sleep_ms(50)
                if not hub_net.uplink_up():
                    raise OSError('the home Wi-Fi is down')
                now = _ticks()
                self.flush(now)
                if _diff(now, state_at) >= _STATE_EVERY:
                    state_at = now
                    self.publish(state_topic, hub.gateway_state(True), True)
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
            if hub.sharing:
                hub.link_state(False)
                hub.log('MQTT connection lost; boards are served on, reconnecting')
        return connected, error

    def publish(self, topic, payload, retain):
        if type(payload) is str:
            payload = payload.encode()  # MQTT counts bytes, not characters
        self.writer.write(_publish_packet(topic.encode(), payload, retain))
        self.hub.counters['published'] += 1

    def flush(self, now):
        """Publishes what changed, each id at most every 250 ms (the latest value gets out last)."""
        hub = self.hub
        prefix = MQTT_PREFIX
        published = self.published
        for device in list(published):
            if _diff(now, published[device]) >= _PUBLISH_EVERY:
                del published[device]
        if hub.dirty_boxes:
            for device in list(hub.dirty_boxes):
                if device in published:
                    continue
                hub.dirty_boxes.discard(device)
                published[device] = now
                self.publish('%s/mailbox/%s' % (prefix, _level(device)), hub.mailbox_message(device), True)
        if hub.dirty_devices:
            for device in list(hub.dirty_devices):
                hub.dirty_devices.discard(device)
                message = hub.device_message(device)
                if message is None:
                    continue
                self.publish('%s/device/%s' % (prefix, _level(device)), message, True)
                hub.devices[device][_PUB] = now
                if HA_DISCOVERY and device not in hub.discovered:
                    hub.discovered.add(device)
                    for topic, config in hub.discovery(device):
                        self.publish(topic, config, True)
        if hub.outbox:
            for topic, payload, retain in hub.outbox:
                self.publish(topic, payload, retain)
            hub.outbox = []

    async def receive(self, reader):
        """Reads packets until the connection ends; hands PUBLISHes to the hub."""
        hub = self.hub
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
                    while size > 0:  # too long for this hub: skipped
                        size -= len(await reader.readexactly(min(size, 512)))
                    hub.warn('an MQTT message longer than %d bytes was skipped' % self.max_packet)
                    continue
                body = await reader.readexactly(size) if size else b''
                if head & 0xF0 != 0x30:
                    continue  # SUBACK, PINGRESP
                length = body[0] << 8 | body[1]
                topic = str(body[2 : 2 + length], 'utf-8')
                start = 2 + length + (2 if head & 6 else 0)
                try:
                    hub.fleet_message(topic, memoryview(body)[start:])
                except Exception as e:
                    hub.warn('sharing: %s: %r' % (_printable(topic), e))
        except Exception:
            pass  # the connection ended: the session sees this task done

    def connect_packet(self):
        hub = self.hub
        client = 'tcpmq-hub-' + ''.join(c if c.isalpha() or c.isdigit() or c in '-_' else '_' for c in hub.gateway)
        will_topic = ('%s/gateway/%s' % (MQTT_PREFIX, _level(hub.gateway))).encode()
        will = hub.gateway_state(False).encode()
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


def _publish_packet(topic, payload, retain):
    return _packet(0x31 if retain else 0x30, _string(topic) + payload)


def _subscribe_packet(filters):
    body = b'\x00\x01'  # packet id 1
    for topic in filters:
        body += _string(topic.encode()) + b'\x00'
    return _packet(0x82, body)


_SETTINGS = (
    'PORT',
    'HOST',
    'REPLY_FORMAT',
    'AP_SSID',
    'AP_PASSWORD',
    'WIFI_SSID',
    'WIFI_PASSWORD',
    'MQTT_HOST',
    'MQTT_PORT',
    'MQTT_USER',
    'MQTT_PASSWORD',
    'MQTT_PREFIX',
    'GATEWAY',
    'OFFLINE_AFTER',
    'IDLE_TIMEOUT',
    'MAX_CONNECTIONS',
    'MAX_BOARDS',
    'MAX_FRAME_BYTES',
    'HA_DISCOVERY',
    'NTP_HOST',
    'STATUS_EVERY',
)


def check_settings():
    """Raises ValueError naming the first setting that cannot work."""
    g = globals()
    if REPLY_FORMAT not in ('text', 'json'):
        raise ValueError("REPLY_FORMAT is 'text' or 'json', not %r" % (REPLY_FORMAT,))
    if AP_PASSWORD and len(AP_PASSWORD) < 8:
        raise ValueError("AP_PASSWORD needs 8 characters or more (WPA2), or '' for an open hotspot")
    for name in ('PORT', 'MQTT_PORT', 'MAX_CONNECTIONS', 'MAX_BOARDS', 'MAX_FRAME_BYTES', 'STATUS_EVERY'):
        if type(g[name]) is not int or g[name] < 1:
            raise ValueError('%s is a whole number of 1 or more, not %r' % (name, g[name]))
    for name in ('OFFLINE_AFTER', 'IDLE_TIMEOUT'):
        if type(g[name]) not in (int, float) or g[name] < 0:
            raise ValueError('%s is a number of seconds, not %r' % (name, g[name]))
    if OFFLINE_AFTER <= 0:
        raise ValueError('OFFLINE_AFTER must be more than 0 seconds')
    if '+' in MQTT_PREFIX or '#' in MQTT_PREFIX or not MQTT_PREFIX:
        raise ValueError('MQTT_PREFIX is a topic without wildcards, not %r' % (MQTT_PREFIX,))


def print_settings():
    g = globals()
    print('TCPMQ hub %s on %s' % (VERSION, sys.platform))
    for name in _SETTINGS:
        value = g[name]
        if name.endswith('PASSWORD') and value:
            value = '*' * len(value)
        print('  %-16s %r' % (name, value))


def run():
    """Starts the hub; returns only if it cannot listen (the error says why)."""
    print_settings()
    check_settings()
    for line in hub_net.start(AP_SSID, AP_PASSWORD, WIFI_SSID, WIFI_PASSWORD):
        print(line)
    hub = Hub()
    asyncio.get_event_loop().set_exception_handler(_exception_handler)
    try:
        asyncio.run(hub.main())
    finally:
        asyncio.new_event_loop()
