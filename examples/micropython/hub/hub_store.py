# The hub's state: mailboxes and the device table, and what a request does to them
# (docs/PROTOCOL.md, requests, mailboxes, online and offline).

import time

from micropython import const

from hub_settings import MAX_BOARDS, OFFLINE_AFTER, REPLY_FORMAT, console, printable
from hub_wire import NONE, NULL, encode_reply, is_number, wall_ms

_ticks = time.ticks_ms
_diff = time.ticks_diff

# A mailbox: [value, writtenAt (wall ms), writer, expiresAt (wall ms or None),
# gateway (the one whose write it is: this hub's name for its own), deadline
# (ticks, or None), reply bytes (cached)]. (writtenAt, gateway) orders writes.
_V = const(0)
_AT = const(1)
_BY = const(2)
_EXP = const(3)
_GW = const(4)
_DL = const(5)
_R = const(6)
DEVICE = 'device'
FLOW = 'flow'

# A board: [online, last request (ticks), requests, address, port, connection,
# want (the mailbox it reads), its first report was a number].
_ON = const(0)
_LAST = const(1)
_COUNT = const(2)
_ADDR = const(3)
_PORT = const(4)
_CONN = const(5)
_WANT = const(6)
_NUMERIC = const(7)


class Store:
    def __init__(self, gateway):
        self.gateway = gateway
        self.as_json = REPLY_FORMAT == 'json'
        self.empty = NULL if self.as_json else NONE
        self.boxes = {}  # id -> mailbox
        self.devices = {}  # id -> board
        self.fleet = None  # the fleet's sharing, told what changes here
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
            reply = box[_R] = encode_reply(box[_V], self.as_json)
        return reply

    def full(self, device):
        """Whether a new mailbox device finds the table full (expired ones are dropped first)."""
        boxes = self.boxes
        if device in boxes or len(boxes) < 2 * MAX_BOARDS:
            return False
        self.purge()
        return len(boxes) >= 2 * MAX_BOARDS

    def room(self, device):
        """Room for a write of this hub's own: a mailbox taken in from the fleet gives way."""
        if not self.full(device):
            return True
        boxes = self.boxes
        for other in boxes:
            if boxes[other][_GW] != self.gateway:
                del boxes[other]
                return True
        return False

    def stamp(self, device):
        """writtenAt for a new write here: never before, nor equal to, what is held for device."""
        now = wall_ms()
        box = self.boxes.get(device)
        if box is not None and box[_AT] >= now:
            return box[_AT] + 1
        return now

    def write(self, device, value, writer, written_at, gateway, expires_at=None, deadline=None, reply=None):
        box = self.boxes.get(device)
        if box is None:
            self.boxes[device] = [value, written_at, writer, expires_at, gateway, deadline, reply]
        else:  # in place: a board writes its mailbox every few seconds for months
            box[_V] = value
            box[_AT] = written_at
            box[_BY] = writer
            box[_EXP] = expires_at
            box[_GW] = gateway
            box[_DL] = deadline
            box[_R] = reply

    def purge(self):
        now = _ticks()
        for device in list(self.boxes):
            self.read(device, now)

    def request(self, conn, sender, want, payload):
        """A board's request: its news written, the reply to it (docs/PROTOCOL.md, requests)."""
        now = _ticks()
        board = self.devices.get(sender)
        if board is None:
            if not self.admit():
                # Every record is a board online: this one is answered, not recorded.
                self.counters['capacityRefused'] += 1
                console.warn('device %s not recorded: %d boards (MAX_BOARDS), all online' % (printable(sender), MAX_BOARDS))
                return self.reply(want, now)
            board = [False, now, 0, conn.address, conn.port, conn.number, want, is_number(payload)]
            self.devices[sender] = board
        if not self.room(sender):
            return self.reply(want, now)
        self.counters['requests'] += 1
        self.write(sender, payload, DEVICE, self.stamp(sender), self.gateway, None, time.ticks_add(now, int(OFFLINE_AFTER * 1000)))
        board[_LAST] = now
        board[_COUNT] += 1
        board[_ADDR] = conn.address
        board[_PORT] = conn.port
        board[_CONN] = conn.number
        board[_WANT] = want
        conn.device = sender
        fleet = self.fleet
        if fleet is not None:
            fleet.mailbox(sender)
        if not board[_ON]:
            board[_ON] = True
            console.warn('device %s online from %s:%d' % (printable(sender), conn.address, conn.port))
            if fleet is not None:
                fleet.device(sender)
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
        if self.fleet is not None:
            self.fleet.evicted(oldest)
        return True

    def sweep(self, now):
        """Boards silent for OFFLINE_AFTER go offline; their news expires with them."""
        offline_ms = OFFLINE_AFTER * 1000
        for device in self.devices:
            board = self.devices[device]
            if board[_ON] and _diff(now, board[_LAST]) >= offline_ms:
                board[_ON] = False
                box = self.boxes.get(device)
                if box is not None and box[_BY] == DEVICE and box[_GW] == self.gateway:
                    del self.boxes[device]
                console.warn('device %s offline' % printable(device))
                if self.fleet is not None:
                    self.fleet.device(device)

    def online(self):
        count = 0
        for board in self.devices.values():
            if board[_ON]:
                count += 1
        return count
