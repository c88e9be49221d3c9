# Sharing through MQTT (docs/PROTOCOL.md, sharing): the hub is one more gateway of
# the fleet. In: the others' retained mailboxes (later (writtenAt, gateway) wins),
# gateway states, /set for the ids this hub owns, send and close. Out: what this
# hub owns (its boards' news, its /set writes), its devices, its plain-text lines,
# Home Assistant discovery (hub_ha.py). The MQTT client (hub_mqtt.py) carries the bytes.

import json
import time

from micropython import const

from hub_settings import HA_DISCOVERY, MAX_FRAME_BYTES, MQTT_PREFIX, OFFLINE_AFTER, VERSION, console, printable
from hub_store import DEVICE, FLOW
from hub_wire import MAX_ID_BYTES, dumps, encode_reply, level, text, unlevel, wall_ms
from hub_ha import board_discovery, board_topics

_ticks = time.ticks_ms
_diff = time.ticks_diff

# Mailbox and board fields (hub_store.py).
_V = const(0)
_AT = const(1)
_BY = const(2)
_EXP = const(3)
_GW = const(4)
_ON = const(0)
_LAST = const(1)
_ADDR = const(3)
_PORT = const(4)
_CONN = const(5)
_WANT = const(6)

_PUBLISH_EVERY = const(250)  # ms between two publishes of one id
_MAX_GATEWAYS = const(32)  # gateway states remembered
# A gateway's state as known from its retained message: it may own ids, it is attached (never owns), offline.
_OWNS = const(1)
_ATTACHED = const(2)
_OFFLINE = const(0)


class Fleet:
    def __init__(self, store, server):
        self.store = store
        self.server = server
        self.gateway = store.gateway
        self.prefix = MQTT_PREFIX + '/'
        self.sharing = False  # connected to the fleet's MQTT broker now
        self.syncing = False  # connected, the retained messages not all in yet
        self.marker = None  # the payload of this connection's sync marker
        self.current = set()  # while syncing: own ids whose retained message is the write held here
        self.gateways = {}  # name -> _OWNS, _ATTACHED or _OFFLINE, from retained gateway states
        self.dirty_boxes = set()  # own mailboxes to publish
        self.dirty_devices = set()
        self.cleared = set()  # mailboxes emptied on purpose (a /set of nothing, an eviction): published empty
        self.outbox = []  # (topic, payload, retain) to publish as they are: raw lines, removals
        self.published = {}  # id -> ticks of its last publish
        self.discovered = set()

    # ---- what changes on this hub (hub_store.py and hub_conn.py tell) ----------------------

    def mailbox(self, device):
        if self.syncing:
            self.current.discard(device)  # a newer write than any retained: published once synced
        elif self.sharing:
            self.cleared.discard(device)
            self.dirty_boxes.add(device)

    def device(self, device):
        if self.sharing and not self.syncing:
            self.dirty_devices.add(device)

    def evicted(self, device):
        """A board dropped from the full device table: its mailbox is emptied everywhere, Home Assistant forgets it."""
        store = self.store
        box = store.boxes.get(device)
        if box is None or box[_GW] == self.gateway:
            store.boxes.pop(device, None)
            self.clear(device)
        if device in self.discovered:
            self.discovered.discard(device)
            if self.sharing:
                for topic in board_topics(device):
                    self.outbox.append((topic, '', True))

    def clear(self, device):
        if self.sharing:
            self.cleared.add(device)
            self.dirty_boxes.add(device)

    def raw(self, conn, line):
        """A line of a plain-text board: shared on <prefix>/raw/<gateway>."""
        if self.sharing and len(self.outbox) < 16:
            data = bytes(line)
            try:
                message = {'data': str(data, 'utf-8')}
            except UnicodeError:
                import binascii

                message = {'data': binascii.b2a_base64(data)[:-1].decode(), 'buffer': True}
            message['gateway'] = self.gateway
            message['connectionId'] = conn.number
            message['remoteAddress'] = conn.address
            message['remotePort'] = conn.port
            self.outbox.append((self.prefix + 'raw/' + level(self.gateway), dumps(message), False))

    # ---- the connection to the fleet -----------------------------------------------------

    def link_up(self, marker):
        """Connected: nothing of this hub goes out until the retained messages are in (synced)."""
        self.sharing = True
        self.syncing = True
        self.marker = marker
        self.gateways = {}
        self.current = set()
        self.dirty_boxes = set()
        self.dirty_devices = set()
        self.cleared = set()
        self.outbox = []
        self.published = {}
        self.discovered = set()

    def synced(self):
        """Every retained message is in: this hub's mailboxes newer than what is retained go out, and its devices."""
        self.syncing = False
        store = self.store
        now = _ticks()
        for device in list(store.boxes):
            box = store.read(device, now)
            if box is not None and box[_GW] == self.gateway and device not in self.current:
                self.dirty_boxes.add(device)
        self.current = set()
        for device in store.devices:
            self.dirty_devices.add(device)

    def link_down(self):
        self.sharing = False
        self.syncing = False
        self.dirty_boxes = set()
        self.dirty_devices = set()
        self.cleared = set()
        self.outbox = []

    def refuse(self, topic, reason):
        console.warn('MQTT %s refused: %s' % (printable(topic), reason))

    # ---- in ------------------------------------------------------------------------------

    def take(self, topic, payload):
        """A message of the fleet; raises on a malformed one."""
        prefix = self.prefix
        if not topic.startswith(prefix):
            return
        levels = topic[len(prefix) :].split('/')
        kind = levels[0]
        count = len(levels)
        self.store.counters['received'] += 1
        if kind == 'mailbox' and count == 2:
            self.take_mailbox(unlevel(levels[1]), payload, topic)
        elif kind == 'mailbox' and count == 3 and levels[2] == 'set':
            self.take_set(unlevel(levels[1]), payload, topic)
        elif kind == 'device' and count == 2:
            self.take_device(unlevel(levels[1]), payload)
        elif kind == 'gateway' and count == 2:
            self.take_gateway(unlevel(levels[1]), payload)
        elif kind == 'gateway' and count == 3 and unlevel(levels[1]) == self.gateway:
            if levels[2] == 'sync':
                if self.syncing and bytes(payload) == self.marker:
                    self.synced()
                return
            command = json.loads(payload)
            if type(command) is not dict:
                raise ValueError('not a command: %s' % printable(bytes(payload)))
            if levels[2] == 'close':
                self.server.close(command)
            elif levels[2] == 'send':
                data = command.get('data')
                data = '' if data is None else str(data)
                if command.get('buffer'):
                    import binascii

                    self.server.send(command, binascii.a2b_base64(data))
                else:
                    self.server.send(command, data.encode())

    def take_mailbox(self, device, payload, topic):
        """<prefix>/mailbox/<id>: taken in only if its (writtenAt, gateway) is later than what is held."""
        if len(device) > 42 and len(device.encode()) > MAX_ID_BYTES:
            return self.refuse(topic, 'an id longer than %d bytes' % MAX_ID_BYTES)
        store = self.store
        box = store.read(device, _ticks())
        if not payload:
            # Emptied by its owner (a write of nothing, an eviction): a board's own news here stays.
            if box is not None and not (box[_GW] == self.gateway and box[_BY] == DEVICE):
                del store.boxes[device]
            return
        shared = json.loads(payload)
        if type(shared) is not dict or type(shared.get('writtenAt')) not in (int, float):
            raise ValueError('not a mailbox message')
        gateway = shared.get('gateway')
        if type(gateway) is not str:
            raise ValueError('a mailbox message without a gateway')
        written_at = shared['writtenAt']
        if box is not None:
            held_at = box[_AT]
            if written_at < held_at or (written_at == held_at and gateway <= box[_GW]):
                if self.syncing and written_at == held_at and gateway == box[_GW]:
                    self.current.add(device)  # the same write: nothing to publish again
                return
        writer = FLOW if shared.get('writer') == FLOW else DEVICE
        # A board's news is served until writtenAt + this hub's own OFFLINE_AFTER.
        expires_at = written_at + OFFLINE_AFTER * 1000 if writer == DEVICE else shared.get('expiresAt')
        now = wall_ms()
        if expires_at is not None and expires_at <= now:
            if box is not None:
                del store.boxes[device]  # superseded by news that has expired already
            return
        if box is None and store.full(device):
            return self.refuse(topic, 'a new id, and the mailbox table is full (2 x MAX_BOARDS)')
        value = shared.get('value')
        if shared.get('buffer'):
            import binascii

            value = binascii.a2b_base64(str(value))
        reply = encode_reply(value, store.as_json)
        if len(reply) > MAX_FRAME_BYTES:
            return self.refuse(topic, 'a reply of %d bytes (MAX_FRAME_BYTES %d)' % (len(reply), MAX_FRAME_BYTES))
        deadline = None
        if writer == DEVICE:
            deadline = time.ticks_add(_ticks(), int(expires_at - now))
        store.write(device, value, writer, written_at, gateway, expires_at, deadline, reply)
        self.dirty_boxes.discard(device)
        if gateway == self.gateway and self.syncing:
            self.current.add(device)  # this hub's own write, taken back

    def owner(self, device):
        """The gateway that applies /set for device (docs/PROTOCOL.md, sharing)."""
        box = self.store.read(device, _ticks())
        if box is not None and self.gateways.get(box[_GW]) != _OFFLINE:
            return box[_GW]
        least = self.gateway
        for name in self.gateways:
            if self.gateways[name] == _OWNS and name < least:
                least = name
        return least

    def take_set(self, device, payload, topic):
        """<prefix>/mailbox/<id>/set: written here only if this hub owns the id, then published as its own."""
        if len(device) > 42 and len(device.encode()) > MAX_ID_BYTES:
            return self.refuse(topic, 'an id longer than %d bytes' % MAX_ID_BYTES)
        if self.owner(device) != self.gateway:
            return  # its owner writes it; the value comes in with the owner's mailbox message
        store = self.store
        data = text(bytes(payload))
        value = data
        try:
            value = json.loads(data)
        except ValueError:
            pass
        if data == '' or value is None:
            store.boxes.pop(device, None)
            self.clear(device)
            return
        if store.full(device):
            return self.refuse(topic, 'a new id, and the mailbox table is full (2 x MAX_BOARDS)')
        reply = encode_reply(value, store.as_json)
        if len(reply) > MAX_FRAME_BYTES:
            return self.refuse(topic, 'a reply of %d bytes (MAX_FRAME_BYTES %d)' % (len(reply), MAX_FRAME_BYTES))
        store.write(device, value, FLOW, store.stamp(device), self.gateway, None, None, reply)
        self.mailbox(device)

    def take_device(self, device, payload):
        """Another gateway's board went offline: its news is not served here any more."""
        if not payload:
            return
        shared = json.loads(payload)
        if type(shared) is dict and shared.get('online') is False and shared.get('gateway') != self.gateway:
            self.drop_news(device, shared.get('gateway'))

    def take_gateway(self, name, payload):
        """A gateway's retained state: whether it may own ids; offline (its will), its boards read None here."""
        if name == self.gateway:
            return
        gateways = self.gateways
        if not payload:
            gateways.pop(name, None)
            return
        state = json.loads(payload)
        if type(state) is not dict:
            return
        if name not in gateways and len(gateways) >= _MAX_GATEWAYS:
            return console.warn('gateway %s not counted: %d gateways known' % (printable(name), _MAX_GATEWAYS))
        if state.get('online') is False:
            gateways[name] = _OFFLINE
            for device in list(self.store.boxes):
                self.drop_news(device, name)
        elif state.get('online') is True:
            gateways[name] = _ATTACHED if state.get('attached') is True else _OWNS

    def drop_news(self, device, gateway):
        boxes = self.store.boxes
        box = boxes.get(device)
        if box is not None and box[_BY] == DEVICE and box[_GW] == gateway and gateway != self.gateway:
            del boxes[device]

    # ---- out -----------------------------------------------------------------------------

    def out(self, now, publish):
        """Hands publish(topic, payload, retain) what changed here, each id at most every 250 ms (the latest last)."""
        if self.syncing:
            return
        store = self.store
        prefix = self.prefix
        published = self.published
        for device in list(published):
            if _diff(now, published[device]) >= _PUBLISH_EVERY:
                del published[device]
        if self.dirty_boxes:
            for device in list(self.dirty_boxes):
                if device in published:
                    continue
                self.dirty_boxes.discard(device)
                if device in self.cleared:
                    self.cleared.discard(device)
                    message = ''
                else:
                    box = store.read(device, now)
                    if box is None or box[_GW] != self.gateway:
                        continue  # expired news is not cleared on MQTT; another's is not this hub's to publish
                    message = self.mailbox_message(device, box)
                published[device] = now
                publish(prefix + 'mailbox/' + level(device), message, True)
        if self.dirty_devices:
            for device in list(self.dirty_devices):
                self.dirty_devices.discard(device)
                message = self.device_message(device)
                if message is None:
                    continue
                publish(prefix + 'device/' + level(device), message, True)
                if HA_DISCOVERY and device not in self.discovered:
                    self.discovered.add(device)
                    for topic, config in board_discovery(self.gateway, device, self.store.devices[device]):
                        publish(topic, config, True)
        if self.outbox:
            outbox = self.outbox
            self.outbox = []
            for topic, payload, retain in outbox:
                publish(topic, payload, retain)

    def mailbox_message(self, device, box):
        """This hub's mailbox as the fleet sees it."""
        value = box[_V]
        message = {'writtenAt': box[_AT], 'writer': box[_BY], 'gateway': self.gateway, 'expiresAt': box[_EXP]}
        if type(value) is bytes:
            import binascii

            message['value'] = binascii.b2a_base64(value)[:-1].decode()
            message['buffer'] = True
        else:
            message['value'] = value
        if box[_BY] == DEVICE:
            message['expiresAt'] = box[_AT] + int(OFFLINE_AFTER * 1000)
            board = self.store.devices.get(device)
            if board is not None:
                message['want'] = board[_WANT]
                message['connectionId'] = board[_CONN]
                message['remoteAddress'] = board[_ADDR]
                message['remotePort'] = board[_PORT]
        return dumps(message)

    def device_message(self, device):
        board = self.store.devices.get(device)
        if board is None:
            return None
        last_seen = wall_ms() - _diff(_ticks(), board[_LAST])
        return dumps({'online': board[_ON], 'lastSeen': last_seen, 'gateway': self.gateway, 'remoteAddress': board[_ADDR]})

    def gateway_state(self, online):
        state = {'online': online, 'version': VERSION, 'startedAt': wall_ms() - console.uptime, 'platform': 'micropython-hub'}
        if online:
            counters = dict(self.store.counters)
            counters['openConnections'] = len(self.server.connections)
            counters['devicesOnline'] = self.store.online()
            state['counters'] = counters
        return dumps(state)
