# The wire contract (docs/PROTOCOL.md) as bytes and values, no sockets: the frame
# reader, requests, ids, reply bytes, and the clock mailboxes are stamped with.

import json
import time

from micropython import const

from hub_settings import MAX_FRAME_BYTES

# MicroPython's epoch is 2000 on some ports: writtenAt is ms since 1970 everywhere.
_EPOCH_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0
if hasattr(time, 'time_ns'):

    def wall_ms():
        return time.time_ns() // 1000000 + _EPOCH_MS

else:

    def wall_ms():
        return int(time.time()) * 1000 + _EPOCH_MS


def clock_is_set():
    # Before NTP an ESP32 starts at its epoch: times from then would lose every
    # comparison in the fleet and read as long expired.
    return wall_ms() > 1700000000000


try:
    json.dumps(0, separators=(',', ':'))

    def dumps(value):
        return json.dumps(value, separators=(',', ':'))

except TypeError:  # an old firmware: spaces after ',' and ':'
    dumps = json.dumps

NONE = b'None'
NULL = b'null'
MAX_ID_BYTES = const(128)
LONG = 'too long'  # marks an id over MAX_ID_BYTES
_MAX_DEPTH = const(33)  # the frame's array and a payload nested 32 levels


def encode_reply(value, as_json):
    """A mailbox's reply bytes (docs/PROTOCOL.md, replies)."""
    kind = type(value)
    if kind is str:
        if as_json:
            return dumps(value).encode()
        return value.encode() if value else NONE
    if kind is bytes:  # a Buffer a flow wrote, taken in from the fleet
        if as_json:
            return dumps(text(value)).encode()
        return value if value else NONE
    return dumps(value).encode()


def text(data):
    try:
        return str(data, 'utf-8')
    except UnicodeError:
        return ''.join(chr(b) if b < 128 else '\ufffd' for b in data)


def canonical_id(value):
    """The canonical text of a device id, None if it is not one, LONG if too long."""
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
    if len(text) > 42 and len(text.encode()) > MAX_ID_BYTES:
        return LONG
    return text


def level(device):
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


def unlevel(name):
    """The id an MQTT topic level names (the inverse of level)."""
    if name == '%':
        return ''
    if '%' not in name:
        return name
    out = []
    i = 0
    n = len(name)
    while i < n:
        c = name[i]
        two = name[i + 1 : i + 3]
        if c == '%' and len(two) == 2 and all(h in '0123456789ABCDEF' for h in two):
            out.append(chr(int(two, 16)))
            i += 3
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def is_number(value):
    """A number, or text that is one ('26.5', '-3'): Home Assistant then shows a numeric sensor."""
    kind = type(value)
    if kind is int or kind is float:
        return True
    if kind is not str or not value:
        return False
    digits = value[1:] if value[0] == '-' else value
    whole, dot, fraction = digits.partition('.')
    return whole.isdigit() and (not dot or fraction.isdigit())


def parse_request(data, deepest):
    """(from, want, payload) of a complete frame, or the reason it is a protocol error (a str)."""
    try:
        value = json.loads(data)
    except MemoryError:
        raise
    except Exception:
        return 'invalid JSON'
    if type(value) is not list or len(value) != 3:
        return 'not a three-element array [from, want, payload]'
    sender = canonical_id(value[0])
    want = canonical_id(value[1])
    if sender is None or want is None:
        return 'device ids must be numbers or strings'
    if sender is LONG or want is LONG:
        return 'device ids are at most %d bytes' % MAX_ID_BYTES
    if deepest > _MAX_DEPTH:
        return 'payload nested deeper than 32 levels'
    return sender, want, value[2]


# Frame reader modes (docs/PROTOCOL.md, frames and plain text).
_BETWEEN = const(0)
_JSON = const(1)
_STRAY = const(2)
_RAW = const(3)


class Reader:
    """A connection's frame reader: hands complete frames to self.frame(data, deepest),
    plain-text lines to self.line(data), and bytes outside a frame to self.refuse(reason)."""

    def __init__(self):
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
                self.frame(frame, deepest)
                continue
            if mode == _STRAY:
                # Bytes that cannot start a frame: up to the next newline or '[', one report a run.
                j = i
                while j < n and buf[j] != 10 and buf[j] != 91:
                    j += 1
                if not self.strayed and j > start:
                    self.strayed = True
                    self.refuse('bytes outside a frame')
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
                self.line(line)
            elif not self.lines:
                line = self._take(view, start, n)
                if line is None:
                    return False
                i = n
                mode = _BETWEEN
                self.line(line)
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
        self.oversize(size)
        return None
