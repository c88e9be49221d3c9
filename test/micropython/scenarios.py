"""Scenarios for examples/micropython/tcpmq.py under CPython, driven by client.test.js.

    python3 test/micropython/scenarios.py NAME PORT

Each scenario prints JSON lines on stdout (progress events, then a last line
with "ok": true and its results) and exits 0; on a failed check it prints
"FAIL <scenario>: <what>" on stderr and exits 1. Standard library only;
loopback only; every loop is bounded in time.
"""
import ast
import json
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, '..', '..', 'examples', 'micropython'))
sys.path.insert(0, EXAMPLES)
import tcpmq  # noqa: E402

HOST = '127.0.0.1'


class Failure(Exception):
    pass


def check(condition, what, *details):
    if not condition:
        raise Failure(what + (' (' + ', '.join(repr(d) for d in details) + ')' if details else ''))


def equal(actual, expected, what):
    if actual != expected or type(actual) is not type(expected):
        raise Failure('%s: expected %r, got %r' % (what, expected, actual))


def emit(**event):
    print(json.dumps(event, ensure_ascii=False), flush=True)


def client(port, device_id, **options):
    options.setdefault('timeout', 2)
    return tcpmq.TcpmqClient(HOST, port, device_id=device_id, **options)


class ConnectCounter:
    """Counts the client's connection attempts (wraps tcpmq's socket module)."""

    def __init__(self):
        self.times = []
        counter = self
        real = socket.socket

        class CountingSocket(real):
            def connect(self, address):
                counter.times.append(time.monotonic())
                return super().connect(address)

        class Module:
            def __getattr__(self, name):
                return CountingSocket if name == 'socket' else getattr(socket, name)

        tcpmq.socket = Module()


class FakeBroker:
    """A loopback server that answers each read with the next scripted reply.

    `replies` holds bytes to send, or None to close the connection instead.
    Records every frame it reads.
    """

    def __init__(self, replies):
        self.replies = list(replies)
        self.frames = []
        self.server = socket.socket()
        self.server.bind((HOST, 0))
        self.server.listen(4)
        self.server.settimeout(5)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            while self.replies:
                conn, _ = self.server.accept()
                conn.settimeout(5)
                with conn:
                    while self.replies:
                        frame = conn.recv(4096)
                        if not frame:
                            break
                        self.frames.append(frame)
                        reply = self.replies.pop(0)
                        if reply is None:
                            break
                        conn.sendall(reply)
        except OSError:
            pass

    def close(self):
        self.server.close()


# ---- scenarios ----------------------------------------------------------------

def scenario_text(port):
    """The project's broker in the text dialect: the test vectors, through the client."""
    one = client(port, 1)
    other = client(port, -1)
    two = client(port, 2)
    string_one = client(port, 'kitchen')
    three = client(port, 3)
    results = {}
    equal(one.exchange(1, '26.5'), '26.5', 'device 1 reads its own news back')
    equal(other.exchange(1, '605'), '26.5', "device -1 reads device 1's news")
    equal(two.exchange(9, 'x'), None, 'an empty mailbox reads None')
    equal(string_one.exchange('1', {'t': 21}), '26.5', 'a text id "1" reads mailbox 1')
    equal(string_one.exchange('kitchen', {'t': 21}), '{"t":21}', 'a JSON value comes back as its JSON text')
    equal(three.exchange(3, '温度'), '温度', 'non-ASCII text comes back as UTF-8')
    equal(three.exchange(3, 'a]["\\'), 'a]["\\', 'brackets, quotes and backslashes come back unchanged')
    equal(three.exchange(-1, '温度'), '605', 'device 3 reads device -1')
    results['kitchen'] = string_one.exchange('kitchen', {'t': 21})
    for c in (one, other, two, string_one, three):
        check(c.connected, 'each client keeps its one connection')
        c.close()
    emit(ok=True, **results)


def scenario_json(port):
    """The project's broker in the json dialect: replies are decoded JSON."""
    one = client(port, 1, dialect='json')
    other = client(port, -1, dialect='json')
    kitchen = client(port, 'kitchen', dialect='json')
    equal(one.exchange(1, '26.5'), '26.5', 'the JSON text "26.5" decodes to the str 26.5')
    equal(other.exchange(1, '605'), '26.5', "device -1 reads device 1's news")
    equal(kitchen.exchange(9, 'x'), None, 'null decodes to None')
    equal(kitchen.exchange('kitchen', {'t': 21}), {'t': 21}, 'a JSON object decodes to a dict')
    equal(kitchen.exchange('kitchen', 42), 42, 'a JSON number decodes to an int')
    equal(kitchen.exchange('kitchen', [1, '温度']), [1, '温度'], 'a JSON list decodes to a list')
    equal(one.exchange(1, '温度'), '温度', 'non-ASCII text decodes')
    equal(one.exchange(-1, '温度'), '605', 'device 1 reads device -1')
    for c in (one, other, kitchen):
        c.close()
    emit(ok=True)


def scenario_ids(port):
    """Ids that look like numbers go out as JSON numbers, the rest as strings."""
    vectors = [
        ('1', 1), ('-1', -1), ('2.5', 2.5), ('0', 0), ('-0.25', -0.25), ('kitchen', 'kitchen'),
        ('01', '01'), ('1.0', '1.0'), ('2.50', '2.50'), ('+1', '+1'), ('1e3', '1e3'), ('-0', '-0'),
        ('', ''), ('-', '-'), ('.5', '.5'), ('5.', '5.'), ('1.2.3', '1.2.3'), (' 1', ' 1'),
        ('12345678901234567890', '12345678901234567890'), ('温度', '温度'), (7, 7), (-1, -1), (2.5, 2.5),
    ]
    for given, expected in vectors:
        equal(tcpmq.wire_id(given), expected, 'wire_id(%r)' % (given,))
    for bad in (True, None, b'1', [1]):
        try:
            tcpmq.wire_id(bad)
        except TypeError:
            continue
        raise Failure('wire_id(%r) should raise TypeError' % (bad,))

    # The bytes on the wire, as a loopback server reads them.
    fake = FakeBroker([b'None'] * 3)
    try:
        c = client(fake.port, '1')
        c.exchange('-1', 'x')
        c.exchange('2.5', '温度')
        c.exchange('kitchen', None)
        c.close()
    finally:
        fake.close()
    frames = [json.loads(f.decode('utf-8')) for f in fake.frames]
    equal(frames, [[1, -1, 'x'], [1, 2.5, '温度'], [1, 'kitchen', None]], 'the frames the client sent')
    for f in frames:
        check(type(f[0]) is int, 'device id "1" goes out as a JSON number', f)

    # The same ids against the project's broker (mocha checks the broker's side).
    one = client(port, '1')
    minus_one = client(port, '-1')
    kitchen = client(port, 'kitchen')
    equal(one.exchange('1', 'news of 1'), 'news of 1', 'device "1" reads mailbox "1"')
    equal(minus_one.exchange(1, 'news of -1'), 'news of 1', 'device "-1" reads mailbox 1')
    equal(kitchen.exchange('-1', 'news of kitchen'), 'news of -1', 'device kitchen reads mailbox "-1"')
    for c in (one, minus_one, kitchen):
        c.close()
    emit(ok=True, frames=[f.decode('utf-8') for f in fake.frames])


def scenario_robust(port):
    """Unexpected replies never raise; a closed connection gives None; bad payloads raise."""
    replies = [b'\xff\xfe\x00', b'{"broken"', b'"quoted"', b'None', b'null', b'  spaced  ']
    fake = FakeBroker(replies + replies)
    try:
        text = client(fake.port, 1)
        got = [text.exchange(2, 'x') for _ in replies]
        equal(got, [b'\xff\xfe\x00', '{"broken"', '"quoted"', None, None, '  spaced  '],
              'text dialect: raw text, bytes if not UTF-8, None for None and null')
        text.close()
        js = client(fake.port, 1, dialect='json')
        got = [js.exchange(2, 'x') for _ in replies]
        equal(got, [b'\xff\xfe\x00', '{"broken"', 'quoted', None, None, '  spaced  '],
              'json dialect: decoded JSON, else raw text')
        js.close()
    finally:
        fake.close()

    # The broker closes the connection instead of replying: None, no exception.
    fake = FakeBroker([None])
    try:
        c = client(fake.port, 1, retry_min=0.05)
        equal(c.exchange(2, 'x'), None, 'a connection closed before the reply gives None')
        check(not c.connected, 'the dead connection is dropped')
        check(isinstance(c.last_error, OSError), 'last_error holds the network error', c.last_error)
    finally:
        fake.close()

    # No reply within the timeout: None after about `timeout` seconds, no exception.
    silent = socket.socket()
    silent.bind((HOST, 0))
    silent.listen(1)
    try:
        c = client(silent.getsockname()[1], 1, timeout=0.3)
        started = time.monotonic()
        equal(c.exchange(2, 'x'), None, 'no reply within the timeout gives None')
        took = time.monotonic() - started
        check(0.25 <= took < 1.5, 'the call waits about timeout seconds', took)
        check(not c.connected, 'the connection is dropped after a timeout (a late reply would be out of step)')
        started = time.monotonic()
        equal(c.exchange(2, 'x'), None, 'the next call, within the backoff, gives None')
        check(time.monotonic() - started < 0.1, 'without waiting')
        c.close()
    finally:
        silent.close()

    c = client(port, 1)
    for bad in (object(), {1, 2}):
        try:
            c.exchange(2, bad)
        except TypeError:
            continue
        raise Failure('a payload that is not JSON should raise TypeError: %r' % (bad,))
    try:
        c.exchange(True, 'x')
        raise Failure('a boolean want should raise TypeError')
    except TypeError:
        pass
    for bad in ({'dialect': 'xml'},):
        try:
            tcpmq.TcpmqClient(HOST, port, device_id=1, **bad)
            raise Failure('TcpmqClient(%r) should raise' % (bad,))
        except ValueError:
            pass
    try:
        tcpmq.TcpmqClient(HOST, port)
        raise Failure('TcpmqClient without device_id should raise')
    except TypeError:
        pass
    emit(ok=True)


def scenario_offline(port):
    """The peer stops: None replies are counted, is_online turns False, then True again."""
    peer = client(port, 7)
    reader = client(port, 8, offline_after=3)
    check(reader.is_online(7), 'an id never asked for counts as online')
    equal(peer.exchange(7, 'p1'), 'p1', 'the peer reports')
    equal(reader.exchange(7, 'r'), 'p1', "the reader gets the peer's news")
    check(reader.is_online(7) and reader.is_online('7'), 'the peer is online, whichever way its id is written')
    peer.close()  # the peer goes silent
    stopped = time.monotonic()
    emit(event='peer stopped')
    replies = []
    went_offline = None
    while time.monotonic() - stopped < 5:
        replies.append(reader.exchange(7, 'r'))
        if not reader.is_online(7):
            went_offline = time.monotonic() - stopped
            break
        time.sleep(0.1)
    check(went_offline is not None, 'is_online(7) turned False within 5 s', replies[-5:])
    check(replies[0] == 'p1', 'the mailbox is still served right after the peer stops', replies[0])
    nones = 0
    for reply in reversed(replies):
        if reply is not None:
            break
        nones += 1
    equal(nones, 3, 'consecutive None replies when is_online turned False')
    check(all(r == 'p1' for r in replies[:-3]), 'before that, the last news', replies)
    check(went_offline >= 0.5, 'not before the broker expired the mailbox', went_offline)
    check(reader.connected, 'None replies are not errors: the connection stays open')
    # The peer speaks again: the next real reply resets the counter.
    equal(peer.exchange(7, 'p2'), 'p2', 'the peer reconnects after close() and reports')
    equal(reader.exchange(7, 'r'), 'p2', 'the reader gets the new news')
    check(reader.is_online(7), 'a real reply makes the peer online again')
    equal(reader.exchange(99, 'r'), None, 'another id')
    check(reader.is_online(7) and reader.is_online(99), 'counters are per wanted id')
    for c in (peer, reader):
        c.close()
    emit(ok=True, went_offline=round(went_offline, 2), replies=len(replies))


def scenario_restart(port):
    """The broker restarts while the client keeps calling exchange(); it recovers by itself."""
    counter = ConnectCounter()
    c = client(port, 5)
    started = time.monotonic()
    phase = 'up'
    real = 0
    down_at = None
    outage_calls = 0
    slowest = 0
    i = 0
    while True:
        elapsed = time.monotonic() - started
        check(elapsed < 12, 'recovered within 12 s (phase %s, %d connection attempts)' % (phase, len(counter.times)),
              repr(c.last_error))
        i += 1
        payload = 'n%d' % i
        t = time.monotonic()
        reply = c.exchange(5, payload)  # must never raise
        slowest = max(slowest, time.monotonic() - t)
        if phase == 'up':
            if reply is None:
                check(real >= 3, 'no None before the broker went down', real)
                phase = 'down'
                down_at = time.monotonic()
                attempts_at_down = len(counter.times)
                emit(event='down', error=repr(c.last_error))
            else:
                equal(reply, payload, 'the own mailbox read back')
                real += 1
                if real == 3:
                    emit(event='ready')
        else:
            if reply is None:
                outage_calls += 1
            else:
                equal(reply, payload, 'the own mailbox read back after the restart')
                break
        time.sleep(0.05)
    outage = time.monotonic() - down_at
    attempts = len(counter.times) - attempts_at_down
    check(attempts <= 4, 'reconnect attempts during the outage are spaced (backoff)', attempts, outage)
    check(outage_calls >= 5, 'calls during the outage returned None at once', outage_calls)
    check(slowest < 1.5, 'no call blocked for long', slowest)
    check(c.connected, 'connected again')
    equal(c.exchange(5, 'after restart'), 'after restart', 'the next exchange works too')
    c.close()
    emit(ok=True, outage=round(outage, 2), attempts=attempts, outage_calls=outage_calls,
         connects=len(counter.times))


def scenario_idle(port):
    """The broker closes idle connections (idleTimeout 0.3 s): a board polling slower
    than that still gets a real reply every time, on a new connection."""
    counter = ConnectCounter()
    c = client(port, 6)
    replies = []
    for i in range(3):
        replies.append(c.exchange(6, 'slow %d' % i))
        time.sleep(0.7)
    equal(replies, ['slow 0', 'slow 1', 'slow 2'], 'every reply real, no None')
    equal(len(counter.times), 3, 'one new connection per call after the broker closed the last one')
    check(c.is_online(6), 'online')
    c.close()
    emit(ok=True)


def scenario_backoff(port):
    """Nothing listens on `port`: attempts 1 s, then 2 s apart, each call returns None at once."""
    counter = ConnectCounter()
    c = client(port, 1)
    started = time.monotonic()
    calls = 0
    slowest = 0
    while time.monotonic() - started < 3.5:
        t = time.monotonic()
        equal(c.exchange(2, 'x'), None, 'an unreachable broker gives None')
        slowest = max(slowest, time.monotonic() - t)
        calls += 1
        time.sleep(0.02)
    check(not c.is_online(2), 'the wanted id counts as offline after 8 None')
    check(isinstance(c.last_error, OSError), 'last_error holds the connection error', c.last_error)
    gaps = [round(b - a, 2) for a, b in zip(counter.times, counter.times[1:])]
    equal(len(counter.times), 3, 'connection attempts in 3.5 s (at 0, 1 and 3 s; gaps %r)' % (gaps,))
    check(0.9 <= gaps[0] <= 1.3 and 1.9 <= gaps[1] <= 2.3, 'gaps of 1 s then 2 s', gaps)
    check(slowest < 0.5, 'no call blocks', slowest)
    # The delay doubles up to 30 s (attempts forced without waiting).
    delays = []
    for _ in range(7):
        c._next = tcpmq._ticks()
        c.exchange(2, 'x')
        delays.append(c._delay)
    equal(delays, [8000, 16000, 30000, 30000, 30000, 30000, 30000], 'the next delays in ms')
    c.close()
    emit(ok=True, calls=calls, gaps=gaps)


# Modules a MicroPython build has (examples/micropython may import only these).
MICROPYTHON_MODULES = {
    'usocket', 'socket', 'ujson', 'json', 'utime', 'time', 'gc', 'machine', 'network',
    'random', 'urandom', 'dht', 'tcpmq',
}


def scenario_lint(port):
    """Both files compile, import only MicroPython modules, and avoid newer syntax."""
    for name in ('tcpmq.py', 'main.py'):
        path = os.path.join(EXAMPLES, name)
        with open(path, encoding='utf-8') as f:
            source = f.read()
        tree = ast.parse(source, path)
        compile(tree, path, 'exec')
        for node in ast.walk(tree):
            where = '%s line %s' % (name, getattr(node, 'lineno', '?'))
            if isinstance(node, ast.Import):
                for alias in node.names:
                    check(alias.name in MICROPYTHON_MODULES, '%s: import %s' % (where, alias.name))
            elif isinstance(node, ast.ImportFrom):
                check(node.module in MICROPYTHON_MODULES, '%s: from %s import' % (where, node.module))
            check(not isinstance(node, ast.JoinedStr), '%s: no f-strings (older ESP8266 firmware)' % where)
            check(not isinstance(node, (ast.AnnAssign, ast.NamedExpr)), '%s: no annotations or :=' % where)
            if isinstance(node, ast.arg):
                check(node.annotation is None, '%s: no annotations' % where)
    emit(ok=True)


def main():
    if len(sys.argv) != 3 or not hasattr(sys.modules[__name__], 'scenario_' + sys.argv[1]):
        names = sorted(n[9:] for n in dir(sys.modules[__name__]) if n.startswith('scenario_'))
        print('usage: scenarios.py {%s} PORT' % ','.join(names), file=sys.stderr)
        sys.exit(2)
    name, port = sys.argv[1], int(sys.argv[2])
    try:
        getattr(sys.modules[__name__], 'scenario_' + name)(port)
    except Failure as failure:
        print('FAIL %s: %s' % (name, failure), file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == '__main__':
    main()
