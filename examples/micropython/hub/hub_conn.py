# The hub's connections: the listening socket, admission (MAX_CONNECTIONS), one
# task per connection reading frames, and closing idle or hopeless ones.

import gc
import socket
import time

import asyncio
from micropython import const

from hub_settings import HOST, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_FRAME_BYTES, PORT, console
from hub_wire import Reader, parse_request

_ticks = time.ticks_ms
_diff = time.ticks_diff
_READ_SIZE = const(256)  # bytes per socket read
_OUT_LIMIT = const(8192)  # unread replies after which a connection is closed


def peer(address):
    """(address, port) of a peer as accept() gives it on an ESP32 or the unix port."""
    if isinstance(address, tuple):
        return str(address[0]), address[1]
    try:
        ip, port = socket.sockaddr(address)[1:3]
        return '.'.join(str(b) for b in ip), port
    except Exception:
        return '?', 0


class Connection(Reader):
    """One TCP connection, the sink of its own frame reader."""

    def __init__(self, server, number, writer, address, port):
        Reader.__init__(self)
        self.server = server
        self.number = number
        self.writer = writer
        self.address = address
        self.port = port
        self.device = None  # the id it last spoke as
        self.active = _ticks()  # the last request or line
        self.task = None

    def frame(self, data, deepest):
        """A complete frame: answered at once (docs/PROTOCOL.md, requests)."""
        request = parse_request(data, deepest)
        if type(request) is str:
            return self.refuse(request)
        self.active = _ticks()
        self.send(self.server.store.request(self, request[0], request[1], request[2]))

    def line(self, data):
        """A line (or chunk) of a plain-text connection: the fleet hears it."""
        self.active = _ticks()
        fleet = self.server.store.fleet
        if fleet is not None:
            fleet.raw(self, data)

    def refuse(self, reason):
        """A protocol error: no reply, no mailbox touched, the connection stays."""
        self.server.store.counters['protocolErrors'] += 1
        console.warn('protocol error from %s:%d: %s' % (self.address, self.port, reason))

    def oversize(self, size):
        self.server.store.counters['oversize'] += 1
        console.warn('%s:%d sent %d bytes without ending a frame (MAX_FRAME_BYTES %d): closed' % (self.address, self.port, size, MAX_FRAME_BYTES))

    def send(self, data):
        self.writer.write(data)  # one socket write when the socket takes it (it nearly always does)


class Server:
    def __init__(self, store):
        self.store = store
        self.connections = {}  # number -> Connection
        self.next_number = 1

    async def start(self):
        try:
            await asyncio.start_server(self.serve, HOST, PORT, MAX_CONNECTIONS)
        except OSError as e:
            raise OSError('cannot listen on %s:%d: %r' % (HOST, PORT, e))

    async def serve(self, reader, writer):
        sock = writer.s
        address, port = peer(writer.get_extra_info('peername'))
        counters = self.store.counters
        if len(self.connections) >= MAX_CONNECTIONS:
            counters['refusedConnections'] += 1
            console.warn('%s:%d refused: %d connections open (MAX_CONNECTIONS)' % (address, port, MAX_CONNECTIONS))
            sock.close()
            return
        number = self.next_number
        self.next_number += 1
        counters['connections'] += 1
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
            console.warn('%s:%d closed: %s' % (address, port, why))
            if why == 'out of memory':
                gc.collect()

    def close(self, target):
        for conn in self.matching(target):
            task = conn.task
            conn.task = None
            if task is not None:
                task.cancel()

    def send(self, target, data):
        for conn in self.matching(target):
            try:
                conn.send(data)
            except Exception as e:
                console.warn('send to %s:%d failed: %r' % (conn.address, conn.port, e))

    def matching(self, target):
        """The connections a send or close command names: {"connectionId"} or {"device"} (an id or address:port)."""
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

    def sweep(self, now):
        """Closes connections without a request for IDLE_TIMEOUT."""
        if IDLE_TIMEOUT <= 0:
            return
        idle_ms = IDLE_TIMEOUT * 1000
        for conn in self.connections.values():
            if _diff(now, conn.active) >= idle_ms and conn.task is not None:
                self.store.counters['idleClosed'] += 1
                console.warn('%s:%d closed: no request for %d s (IDLE_TIMEOUT)' % (conn.address, conn.port, IDLE_TIMEOUT))
                task = conn.task
                conn.task = None
                task.cancel()
