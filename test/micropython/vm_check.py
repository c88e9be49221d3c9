# Runs inside a real MicroPython VM (the WebAssembly port, driven by
# micropython-vm.test.js): tcpmq.py against an in-memory broker, since that
# port has no sockets. Checks what CPython cannot: MicroPython's json, ticks,
# bytes.decode and errors. An AssertionError fails the test.
import sys


class FakeSocket:
    """A socket to an in-memory text-dialect broker; class attributes steer it."""
    store = {}
    connects = 0
    refuse = 0  # refuse this many connection attempts
    hang_up = False  # answer the next request by closing the connection
    last_frame = None

    def __init__(self, family=2, kind=1):
        self.reply = None

    def settimeout(self, seconds):
        pass

    def connect(self, address):
        FakeSocket.connects += 1
        if FakeSocket.refuse:
            FakeSocket.refuse -= 1
            raise OSError(111)

    def write(self, data):
        import json
        FakeSocket.last_frame = data
        frame = json.loads(data)
        FakeSocket.store[str(frame[0])] = frame[2]
        value = FakeSocket.store.get(str(frame[1]))
        if value is None:
            self.reply = b'None'
        elif isinstance(value, str):
            self.reply = value.encode('utf-8')
        else:
            self.reply = json.dumps(value).encode('utf-8')
        return len(data)

    def recv(self, size):
        reply, self.reply = self.reply, None
        if FakeSocket.hang_up:
            FakeSocket.hang_up = False
            return b''
        return reply

    def close(self):
        pass


class FakeSocketModule:
    SOCK_STREAM = 1
    socket = FakeSocket

    @staticmethod
    def getaddrinfo(host, port):
        return [(2, 1, 0, '', (host, port))]


sys.modules['usocket'] = FakeSocketModule
sys.modules['socket'] = FakeSocketModule
sys.path.insert(0, '/')
import tcpmq

assert sys.implementation.name == 'micropython'
assert hasattr(tcpmq.time, 'ticks_ms'), 'uses MicroPython ticks'

for given, expected in [('1', 1), ('-1', -1), ('2.5', 2.5), ('0', 0), ('-0.25', -0.25), ('kitchen', 'kitchen'),
                        ('01', '01'), ('1.0', '1.0'), ('2.50', '2.50'), ('+1', '+1'), ('1e3', '1e3'), ('-0', '-0'),
                        ('', ''), ('-', '-'), ('.5', '.5'), ('5.', '5.'), ('1.2.3', '1.2.3'), ('温度', '温度'), (7, 7)]:
    got = tcpmq.wire_id(given)
    assert got == expected and type(got) is type(expected), 'wire_id(%r) = %r' % (given, got)

c = tcpmq.TcpmqClient('192.168.4.1', 9999, device_id='1', offline_after=3)
assert c.exchange(1, '26.5') == '26.5'
assert FakeSocket.last_frame.decode().replace(' ', '') == '[1,1,"26.5"]', FakeSocket.last_frame
assert c.exchange('2.5', '温度') is None
assert '温度' in FakeSocket.last_frame.decode('utf-8')
assert c.exchange(1, '温度') == '温度'
got = c.exchange('1', {'t': 21})
assert got.replace(' ', '') == '{"t":21}', got
for i in range(3):
    assert c.exchange(9, 'x') is None
assert not c.is_online(9) and c.is_online(1)

j = tcpmq.TcpmqClient('192.168.4.1', 9999, device_id=2, dialect='json')
assert j._decode(b'"26.5"') == '26.5'
assert j._decode(b'{"t":21}') == {'t': 21}
assert j._decode(b'null') is None
assert j._decode(b'{"broken"') == '{"broken"'
assert j._decode(b'\xff\xfe') == b'\xff\xfe'
assert c._decode(b'"quoted"') == '"quoted"'

# The connection dies: None, then the backoff, then a new connection.
FakeSocket.hang_up = True
FakeSocket.refuse = 1
assert c.exchange(1, 'a') is None
assert not c.connected and c._delay == 1000, c._delay
before = FakeSocket.connects
assert c.exchange(1, 'b') is None and FakeSocket.connects == before, 'no attempt within the backoff'
c._next = tcpmq._ticks()
assert c.exchange(1, 'c') == 'c' and c._delay == 0
try:
    c.exchange(True, 'x')
    raise AssertionError('a boolean id should raise TypeError')
except TypeError:
    pass
print('tcpmq.py logic OK on', sys.implementation.name, sys.version)
