# TCPMQ client for MicroPython boards (ESP8266, ESP32) that also runs on CPython 3.
#
# TCPMQ is a mailbox protocol over plain TCP: a device sends the JSON array
# [myId, wantId, myNews] and the broker answers with wantId's latest news, or
# None when that mailbox is empty or its device has gone silent.
#
#     from tcpmq import TcpmqClient
#     client = TcpmqClient('192.168.4.1', 9999, device_id=1)
#     while True:
#         reply = client.exchange(-1, '26.5')   # store 26.5 in mailbox 1, read mailbox -1
#         if reply is not None:
#             print('peer says', reply)
#         if not client.is_online(-1):
#             print('peer offline')
#         time.sleep(2)
#
# Errors: exchange() never raises because of the network or of what the broker
# sends back. When the broker cannot be reached, the connection breaks or no
# reply comes within `timeout` seconds, exchange() returns None (like a None
# reply, so it counts towards "offline"), closes the connection and reconnects
# on a later call. Reconnect attempts are spaced 1, 2, 4, 8, 16, 30, 30 ... s
# apart (retry_min, retry_max) and reset after the next real reply; between
# attempts exchange() returns None at once without touching the network, so a
# main loop must keep its own pace (e.g. sleep 2 s per round). If a connection
# that used to work turns out to be dead (the broker restarted, or closed it as
# idle), exchange() reconnects once at once within the same call. `connected`
# tells whether a connection is open and `last_error` holds the last network
# error. Only a payload that cannot be turned into JSON, or an id that is
# neither a number nor text, raises (TypeError): that is a bug in the caller.
#
# Memory: the request list, the counters and the socket are kept between
# calls; a call allocates only the frame text, its bytes and the reply.

try:
    import usocket as socket
except ImportError:
    import socket
try:
    import ujson as json
except ImportError:
    import json
try:
    import utime as time
except ImportError:
    import time

if hasattr(time, 'ticks_ms'):  # MicroPython: wrapping millisecond ticks
    _ticks = time.ticks_ms
    _ticks_diff = time.ticks_diff
    _ticks_add = time.ticks_add
else:  # CPython
    def _ticks():
        return int(time.monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b

    def _ticks_add(a, b):
        return a + b

# errno values that mean "no answer in time": EAGAIN, ETIMEDOUT (Linux, lwIP), ETIMEDOUT (ESP-IDF)
_TIMEOUTS = (11, 110, 116)
_NONE = b'None'
_NULL = b'null'


def _number(text):
    """The JSON number whose canonical text is `text` ("1", "-1", "2.5"), else None.

    "01", "1.0", "+1", "1e3" and "-0" are not: sent as numbers they would name
    another mailbox than the text does, so they stay text.
    """
    n = len(text)
    if n == 0 or n > 16:
        return None
    start = 1 if text[0] == '-' else 0
    dot = -1
    i = 0
    for c in text:
        if c == '.':
            if dot >= 0:
                return None
            dot = i
        elif (c < '0' or c > '9') and not (i == 0 and start):
            return None
        i += 1
    if n == start or dot == start or dot == n - 1:
        return None
    if text[start] == '0' and n > start + 1 and dot != start + 1:
        return None  # a leading zero
    if dot < 0:
        value = int(text)
    elif text[n - 1] == '0':
        return None  # "2.50" is not how 2.5 is written
    else:
        value = float(text)
    # The float must come back as the same text (e.g. single-precision floats on ESP8266).
    return value if json.dumps(value) == text else None


def wire_id(device_id):
    """A device id as it goes on the wire (docs/PROTOCOL.md, client mode).

    Text that looks like a number ("1", "-1", "2.5") becomes that number, any
    other text stays text; numbers go as they are. The brokers in the field key
    mailboxes by the JSON value, so 1 and "1" are different mailboxes there.
    """
    if isinstance(device_id, str):
        value = _number(device_id)
        return device_id if value is None else value
    if isinstance(device_id, (int, float)) and not isinstance(device_id, bool):
        return device_id
    raise TypeError('a device id is a number or text, not %r' % (device_id,))


def _is_timeout(error):
    code = error.args[0] if error.args else None
    # CPython's socket.timeout carries the text 'timed out' instead of an errno.
    return code in _TIMEOUTS or not isinstance(code, int)


class TcpmqClient:
    """One device talking to a TCPMQ broker over one TCP connection, in lockstep.

    host, port      the broker (an ESP32 hotspot broker is 192.168.4.1:9999)
    device_id       this device's id: its news goes to this mailbox
    timeout         seconds to wait for a connection or a reply
    offline_after   consecutive None replies after which is_online(want) is False
    dialect         'text' (the ESP32 broker and the project's default: strings
                    come back bare) or 'json' (the PC broker: replies are JSON text)
    retry_min, retry_max   reconnect backoff in seconds: doubles from min up to max
    bufsize         the most bytes one reply is read as (one recv, as field devices do)
    """

    def __init__(self, host, port=9999, device_id=None, timeout=8, offline_after=8,
                 dialect='text', retry_min=1, retry_max=30, bufsize=1024):
        if device_id is None:
            raise TypeError('device_id is required')
        if dialect not in ('text', 'json'):
            raise ValueError("dialect is 'text' or 'json'")
        self.host = host
        self.port = port
        self.device_id = wire_id(device_id)
        self.timeout = timeout
        self.offline_after = offline_after
        self.dialect = dialect
        self.last_error = None
        self._json = dialect == 'json'
        self._retry_min = int(retry_min * 1000)
        self._retry_max = int(retry_max * 1000)
        self._bufsize = bufsize
        self._sock = None
        self._send = None
        self._delay = 0  # ms until the next connection attempt; 0 = at once
        self._next = 0  # ticks of the next allowed attempt
        self._frame = [self.device_id, None, None]
        self._misses = {}  # wanted id -> consecutive None replies (capped)
        self._want_in = None  # the last want as given, and as sent
        self._want_out = None

    @property
    def connected(self):
        return self._sock is not None

    def exchange(self, want, payload=None):
        """Stores `payload` in this device's mailbox and returns mailbox `want`.

        Returns None when that mailbox is empty or expired (the reply None or
        null) and when the broker could not be reached (see the top of this
        file). Otherwise, in the text dialect: the reply's text, unchanged
        ('26.5', '{"t":21}'), or its bytes if they are not UTF-8; in the json
        dialect: the decoded JSON value ('26.5', {'t': 21}, 42), or the raw
        text if the reply is not JSON.
        """
        if want is not self._want_in:
            self._want_out = wire_id(want)
            self._want_in = want
        key = self._want_out
        frame = self._frame
        frame[1] = key
        frame[2] = payload
        try:
            data = json.dumps(frame).encode('utf-8')
        finally:
            frame[2] = None  # do not keep the caller's payload alive
        raw = self._request(data)
        value = None if raw is None else self._decode(raw)
        misses = self._misses
        if value is None:
            count = misses.get(key, 0)
            if count < self.offline_after:
                misses[key] = count + 1
        elif misses.get(key):
            misses[key] = 0
        return value

    def is_online(self, want):
        """False once `offline_after` replies in a row for `want` were None.

        True again at the next real reply; True for an id never asked for.
        """
        return self._misses.get(wire_id(want), 0) < self.offline_after

    def close(self):
        """Closes the connection; a later exchange() opens a new one."""
        self._drop(None)
        self._delay = 0

    # ---- internals ------------------------------------------------------

    def _request(self, data):
        if self._sock is not None:
            try:
                return self._roundtrip(data)
            except OSError as error:
                self._drop(error)
                if _is_timeout(error):
                    self._backoff()
                    return None
                # The connection had worked before and is dead now (the broker
                # restarted or closed it as idle): try a new one at once.
        elif self._delay and _ticks_diff(self._next, _ticks()) > 0:
            return None  # waiting before the next attempt
        try:
            self._connect()
            return self._roundtrip(data)
        except OSError as error:
            self._drop(error)
            self._backoff()
            return None

    def _connect(self):
        address = socket.getaddrinfo(self.host, self.port)[0]
        sock = socket.socket(address[0], socket.SOCK_STREAM)
        self._sock = sock  # so that _drop closes it if connect fails
        sock.settimeout(self.timeout)
        sock.connect(address[-1])
        # MicroPython's write() sends everything; CPython's sockets have sendall().
        self._send = getattr(sock, 'write', None) or sock.sendall

    def _roundtrip(self, data):
        self._send(data)  # the whole frame in one write
        raw = self._sock.recv(self._bufsize)  # the whole reply in one read
        if not raw:
            raise OSError(104, 'the broker closed the connection')
        self._delay = 0
        return raw

    def _backoff(self):
        delay = self._delay * 2 if self._delay else self._retry_min
        if delay > self._retry_max:
            delay = self._retry_max
        self._delay = delay
        self._next = _ticks_add(_ticks(), delay)

    def _drop(self, error):
        if error is not None:
            self.last_error = error
        sock = self._sock
        self._sock = None
        self._send = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _decode(self, raw):
        if raw == _NONE or raw == _NULL:
            return None
        try:
            text = raw.decode('utf-8')
        except ValueError:  # UnicodeError: not UTF-8 (or cut inside a character)
            return raw
        if self._json:
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text
