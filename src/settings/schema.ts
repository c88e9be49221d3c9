/**
 * Every setting the tcpmq-broker node and tcpmq-gateway share, once: its key
 * (the node's property, the gateway's config file key), default, range and the
 * modes it belongs to. The node's runtime, the gateway's command line (flag and
 * environment variable derived from the key) and the editor's defaults,
 * placeholders and validators all read this list: such a setting is added here
 * and nowhere else. What only one host has is its own: the node's mode, TLS
 * node, persist flag, MQTT broker node and device list (src/nodes/broker-user.ts),
 * the gateway's TLS files, persist file, MQTT URL and log level (src/gateway/options.ts).
 */

export type Mode = 'server' | 'client' | 'fleet';

type SettingType =
  /** A whole number in [min, max]. */
  | 'integer'
  /** A number of seconds (fractions allowed) in [min, max]. */
  | 'seconds'
  /** One of `choices`. */
  | 'choice'
  /** Free text, trimmed. */
  | 'text'
  /** On or off. */
  | 'flag';

export interface Setting {
  key: string;
  type: SettingType;
  default: string | number | boolean;
  /** The default in client mode, where it differs (the ESP32 hotspot's address). */
  clientDefault?: string | number;
  min?: number;
  max?: number;
  choices?: readonly string[];
  modes: readonly Mode[];
  /** One line for the gateway's --help (the editor's words are in the message catalogue). */
  help: string;
}

const SERVER: readonly Mode[] = ['server'];
const CLIENT: readonly Mode[] = ['client'];
const SHARING: readonly Mode[] = ['server', 'fleet'];

export const SETTINGS = [
  {
    key: 'host',
    type: 'text',
    default: '0.0.0.0',
    clientDefault: '192.168.4.1',
    modes: ['server', 'client'],
    help: 'address to listen on (server) or of the remote broker (client)',
  },
  {
    key: 'port',
    type: 'integer',
    default: 9999,
    min: 1,
    max: 65535,
    modes: ['server', 'client'],
    help: 'TCP port',
  },
  {
    key: 'replyFormat',
    type: 'choice',
    default: 'text',
    choices: ['text', 'json'],
    modes: ['server', 'client'],
    help: 'reply dialect: text (None) or json (null)',
  },
  {
    key: 'offlineAfter',
    type: 'seconds',
    default: 30,
    min: 0.1,
    max: 86400,
    modes: SHARING,
    help: 'seconds of silence before a device is offline',
  },
  {
    key: 'idleTimeout',
    type: 'seconds',
    default: 60,
    min: 0,
    max: 86400,
    modes: SERVER,
    help: 'seconds a silent connection stays open (0: forever)',
  },
  {
    key: 'maxConnections',
    type: 'integer',
    default: 1000,
    min: 1,
    max: 1000000,
    modes: SERVER,
    help: 'open connections at most',
  },
  {
    key: 'maxFrameBytes',
    type: 'integer',
    default: 65536,
    min: 64,
    max: 16777216,
    modes: SERVER,
    help: 'bytes in one request at most',
  },
  {
    key: 'maxDevices',
    type: 'integer',
    default: 10000,
    min: 1,
    max: 1000000,
    modes: SHARING,
    help: 'device records (and mailboxes written through MQTT) at most',
  },
  {
    key: 'allowFrom',
    type: 'text',
    default: '',
    modes: SERVER,
    help: 'addresses and CIDR ranges that may connect, comma-separated (empty: any)',
  },
  {
    key: 'allowDevices',
    type: 'text',
    default: '',
    modes: SERVER,
    help: 'device ids that may send, comma-separated (empty: any)',
  },
  { key: 'shareTopic', type: 'text', default: 'tcpmq', modes: SHARING, help: 'MQTT topic prefix of the fleet' },
  {
    key: 'gateway',
    type: 'text',
    default: '',
    modes: SERVER,
    help: "this gateway's name in the fleet (empty: the host name)",
  },
  { key: 'haDiscovery', type: 'flag', default: false, modes: SERVER, help: 'publish Home Assistant MQTT discovery' },
  {
    key: 'publishInterval',
    type: 'integer',
    default: 250,
    min: 0,
    max: 60000,
    modes: SERVER,
    help: 'ms between two publishes of one mailbox (0: every report)',
  },
  { key: 'clientId', type: 'text', default: '', modes: CLIENT, help: "this device's id on the remote broker" },
  { key: 'watch', type: 'text', default: '', modes: CLIENT, help: 'ids whose mailboxes are read, comma-separated' },
  {
    key: 'pollInterval',
    type: 'seconds',
    default: 2,
    min: 0.05,
    max: 3600,
    modes: CLIENT,
    help: 'seconds from one request to the next',
  },
  {
    key: 'offlineAfterNones',
    type: 'integer',
    default: 8,
    min: 1,
    max: 1000,
    modes: CLIENT,
    help: 'empty replies in a row before a watched id is offline',
  },
] as const satisfies readonly Setting[];

type ValueOf<S> = S extends { type: 'flag' }
  ? boolean
  : S extends { type: 'integer' | 'seconds' }
    ? number
    : S extends { choices: readonly (infer C)[] }
      ? C
      : string;

/** Every setting with its value. */
export type Settings = { [S in (typeof SETTINGS)[number] as S['key']]: ValueOf<S> };

/** A value that fails its setting's check, named as the caller names it (a flag, a property). */
export class SettingError extends Error {}

/** The default of every setting, in `mode`. */
export function defaults(mode: Mode = 'server'): Settings {
  const values: Record<string, unknown> = {};
  for (const s of SETTINGS as readonly Setting[])
    values[s.key] = mode === 'client' && s.clientDefault !== undefined ? s.clientDefault : s.default;
  return values as Settings;
}

/**
 * `raw` checked against `s`: its value, or why not (in words that name the
 * range). Empty (undefined, null, '') is undefined: the default applies.
 * Numbers may come as text (the editor saves what was typed).
 */
export function check(s: Setting, raw: unknown): { value?: string | number | boolean; problem?: string } {
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) return {};
  switch (s.type) {
    case 'integer':
    case 'seconds': {
      const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
      const whole = s.type === 'integer';
      const ok =
        Number.isFinite(n) && (!whole || Number.isInteger(n)) && n >= (s.min ?? -Infinity) && n <= (s.max ?? Infinity);
      if (ok) return { value: n };
      const what = whole ? 'a whole number' : 'a number of seconds';
      return { problem: `${printableValue(raw)} is not ${what} from ${s.min} to ${s.max}` };
    }
    case 'choice': {
      const text = String(raw).trim();
      return s.choices?.includes(text)
        ? { value: text }
        : { problem: `${printableValue(raw)} is not one of ${s.choices?.join(', ')}` };
    }
    case 'flag':
      if (raw === true || raw === 'true' || raw === '1' || raw === 1 || raw === 'yes') return { value: true };
      if (raw === false || raw === 'false' || raw === '0' || raw === 0 || raw === 'no') return { value: false };
      return { problem: `${printableValue(raw)} is not true or false` };
    default:
      return { value: String(raw).trim() };
  }
}

/**
 * The settings of `mode` from `raw` (a node's properties, a config file, flags):
 * missing ones take their default; a bad one takes its default and is listed
 * in `problems` ("maxFrameBytes: 10 is not a whole number from 64 to 16777216").
 */
export function readSettings(
  raw: Record<string, unknown>,
  mode: Mode = 'server',
): { settings: Settings; problems: string[] } {
  const settings = defaults(mode) as Record<string, unknown>;
  const problems: string[] = [];
  for (const s of SETTINGS as readonly Setting[]) {
    const { value, problem } = check(s, raw[s.key]);
    if (problem) problems.push(`${s.key}: ${problem}`);
    else if (value !== undefined) settings[s.key] = value;
  }
  return { settings: settings as Settings, problems };
}

/** The editor's view of the schema: key -> default, range and modes (emitted into the node's HTML by the build). */
export function editorSchema(): Record<string, Omit<Setting, 'key' | 'help'>> {
  const out: Record<string, Omit<Setting, 'key' | 'help'>> = {};
  for (const s of SETTINGS as readonly Setting[]) {
    out[s.key] = {
      type: s.type,
      default: s.default,
      clientDefault: s.clientDefault,
      min: s.min,
      max: s.max,
      choices: s.choices,
      modes: s.modes,
    };
  }
  return out;
}

function printableValue(raw: unknown): string {
  const text = typeof raw === 'string' ? raw : (JSON.stringify(raw) ?? String(raw));
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);
}
