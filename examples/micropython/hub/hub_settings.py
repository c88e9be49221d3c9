# The TCPMQ hub's settings and its console. Every setting has its default here;
# hub_config.py (your own file on the board) overrides any of them, e.g.
#     AP_PASSWORD = 'my-hotspot-pw'
# The names are a public contract (docs/hub.md, settings).

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
MAX_FRAME_BYTES = 2048  # the longest frame, line or reply; a longer frame closes its connection
HA_DISCOVERY = False  # publish Home Assistant MQTT discovery for each board
NTP_HOST = 'pool.ntp.org'  # where the clock is set from once the home Wi-Fi is up
STATUS_EVERY = 60  # seconds between status lines on the serial console

try:
    from hub_config import *  # noqa: F401,F403  (the user's own settings)
except ImportError:
    pass

import sys

VERSION = '0.2.0'
SHARING = bool(MQTT_HOST and WIFI_SSID)

_NAMES = (
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


def check():
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


def show():
    g = globals()
    print('TCPMQ hub %s on %s' % (VERSION, sys.platform))
    for name in _NAMES:
        value = g[name]
        if name.endswith('PASSWORD') and value:
            value = '*' * len(value)
        print('  %-16s %r' % (name, value))


def printable(text, limit=60):
    """Text from a board or the network as one harmless console line: control characters as \\xNN."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + '...'
    for c in text:
        if c < ' ' or '\x7f' <= c < '\xa0':
            return ''.join('\\x%02x' % ord(c) if c < ' ' or '\x7f' <= c < '\xa0' else c for c in text)
    return text


_WARNINGS_PER_MINUTE = 20


class Console:
    """The serial console: what the hub says, stamped with its uptime."""

    def __init__(self):
        self.uptime = 0  # ms, summed by the hub's sweeper (ticks wrap)
        self.warned = 0
        self.minute = 0

    def log(self, text):
        print('[%8.1f] %s' % (self.uptime / 1000, text))

    def warn(self, text):
        """What boards and other MQTT clients cause: at most 20 lines a minute."""
        minute = self.uptime // 60000
        if minute != self.minute:
            if self.warned > _WARNINGS_PER_MINUTE:
                self.log('%d more warnings in the last minute were not shown' % (self.warned - _WARNINGS_PER_MINUTE))
            self.minute = minute
            self.warned = 0
        self.warned += 1
        if self.warned <= _WARNINGS_PER_MINUTE:
            self.log(text)


console = Console()
