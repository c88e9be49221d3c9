# Home Assistant's MQTT discovery for the hub and its boards, as the fleet's other
# gateways publish it: the hub is a device with a connectivity sensor; each board a
# device under it with a sensor and a Command text entity writing the mailbox it reads.

from micropython import const

from hub_settings import MQTT_PREFIX, OFFLINE_AFTER, VERSION
from hub_wire import dumps, level

# Board fields (hub_store.py).
_WANT = const(6)
_NUMERIC = const(7)

_ONLINE = "{{ 'online' if value_json.online else 'offline' }}"
# Any value as Home Assistant's state: text as it is, anything else as JSON, within 255 characters.
_TEXT_VALUE = '{{ (value_json.value if value_json.value is string else value_json.value | tojson)[:255] }}'
# A number, or None (an unknown state) when it is not one.
_NUMBER_VALUE = '{{ value_json.value | float(None) }}'


def entity_id(name):
    """A name as Home Assistant's entity ids: lowercase, '_' for every character outside [a-z0-9_]."""
    return ''.join(c if 'a' <= c <= 'z' or '0' <= c <= '9' or c == '_' else '_' for c in name.lower())


def object_id(device):
    """A board's id in unique ids and topics, as the other gateways write it: letters, digits, '-'; the rest by code."""
    out = []
    for c in device:
        o = ord(c)
        out.append(c if 48 <= o <= 57 or 65 <= o <= 90 or 97 <= o <= 122 or o == 45 else '_%x' % o)
    return 'tcpmq_' + ''.join(out)


def _origin():
    return {'name': 'TCPMQ for Node-RED', 'sw_version': VERSION, 'support_url': 'https://github.com/tcpmq/node-red-tcpmq'}


def board_topics(device):
    """A board's discovery topics, one per platform it may have an entity on."""
    obj = object_id(device)
    return tuple('homeassistant/%s/%s/config' % (platform, obj) for platform in ('sensor', 'text', 'switch'))


def board_discovery(gateway, device, board):
    """(topic, payload) pairs for a board of this hub."""
    numeric = board[_NUMERIC]
    kind = 'sensor' if numeric else 'text'
    obj = object_id(device)
    common = {
        'availability': [
            {'topic': MQTT_PREFIX + '/device/' + level(device), 'value_template': _ONLINE},
            {'topic': MQTT_PREFIX + '/gateway/' + level(gateway), 'value_template': _ONLINE},
        ],
        'availability_mode': 'all',
        'device': {
            'identifiers': [obj],
            'name': 'TCPMQ %s' % device,
            'manufacturer': 'TCPMQ',
            'model': 'MicroPython board (%s)' % kind,
            'sw_version': VERSION,
            'via_device': 'tcpmq_gateway_' + entity_id(gateway),
        },
        'origin': _origin(),
    }
    sensor = {
        'name': None,
        'unique_id': obj,
        'default_entity_id': 'sensor.' + entity_id(obj),
        'state_topic': MQTT_PREFIX + '/mailbox/' + level(device),
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
        'default_entity_id': 'text.' + entity_id(obj + '_command'),
        # The mailbox the board reads (its want), kept with its record.
        'command_topic': MQTT_PREFIX + '/mailbox/' + level(board[_WANT]) + '/set',
        'max': 255,
    }
    command.update(common)
    sensor_topic, text_topic, switch_topic = board_topics(device)
    return ((sensor_topic, dumps(sensor)), (text_topic, dumps(command)), (switch_topic, ''))


def gateway_discovery(gateway):
    """(topic, payload) of the hub itself as a device with a connectivity sensor."""
    obj = 'tcpmq_gateway_' + entity_id(gateway)
    config = {
        'name': None,
        'unique_id': obj,
        'default_entity_id': 'binary_sensor.' + obj,
        'device_class': 'connectivity',
        'state_topic': MQTT_PREFIX + '/gateway/' + level(gateway),
        'value_template': "{{ 'ON' if value_json.online else 'OFF' }}",
        'device': {
            'identifiers': [obj],
            'name': 'TCPMQ gateway %s' % gateway,
            'manufacturer': 'TCPMQ',
            'model': 'TCPMQ hub (MicroPython)',
            'sw_version': VERSION,
        },
        'origin': _origin(),
    }
    return 'homeassistant/binary_sensor/%s/config' % obj, dumps(config)
