/**
 * The gateway's settings: the broker's (src/settings/schema.ts: the same
 * names, defaults and checks as the tcpmq-broker node) and its own (TLS files,
 * persist file, MQTT URL, log level), from a JSON config file (`--config`,
 * keys named as the node's settings), environment variables (`TCPMQ_PORT`) and
 * command-line flags (`--port`); a flag wins over the environment, which wins
 * over the file.
 */

import { readFileSync } from 'node:fs';
import { parseAllowFrom } from '../broker/admission';
import { readDeviceList, type DeviceList } from '../settings/device-list';
import { SETTINGS, SettingError, check, readSettings, type Setting, type Settings } from '../settings/schema';

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The gateway's own settings, beside the broker's. */
const OWN: readonly Setting[] = [
  { key: 'tlsCert', type: 'text', default: '', modes: ['server'], help: 'certificate file (PEM): serve TLS' },
  { key: 'tlsKey', type: 'text', default: '', modes: ['server'], help: 'private key file (PEM) of --tls-cert' },
  {
    key: 'tlsCa',
    type: 'text',
    default: '',
    modes: ['server'],
    help: 'CA file (PEM): devices must show a certificate it signed',
  },
  // A file's path here; the node's `persist` is a flag (its file is in the user directory).
  {
    key: 'persist',
    type: 'text',
    default: '',
    modes: ['server'],
    help: 'file that keeps mailboxes and devices through restarts',
  },
  {
    key: 'mqtt',
    type: 'text',
    default: '',
    modes: ['server'],
    help: 'MQTT broker URL: mqtt://user:pass@host:1883, mqtts://... (empty: alone)',
  },
  { key: 'logLevel', type: 'choice', default: 'info', choices: LOG_LEVELS, modes: ['server'], help: 'log level' },
];

/** Broker settings the gateway has no use for (client mode). */
const CLIENT_ONLY = new Set(['clientId', 'watch', 'pollInterval', 'offlineAfterNones']);

/** Every setting the gateway reads, each with its flag and variable. */
const GATEWAY_SETTINGS: readonly (Setting & { flag: string; env: string })[] = [
  ...(SETTINGS as readonly Setting[]).filter((s) => !CLIENT_ONLY.has(s.key)),
  ...OWN,
].map((s) => {
  // The fleet's topic prefix is `--topic` (the node calls it shareTopic).
  const name = s.key === 'shareTopic' ? 'topic' : s.key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return { ...s, flag: `--${name}`, env: `TCPMQ_${name.replace(/-/g, '_').toUpperCase()}` };
});

export type GatewayOptions = Settings & {
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  /** The snapshot's file (empty: nothing kept); the node's `persist` is a flag instead. */
  persist: string;
  mqtt: string;
  logLevel: LogLevel;
  /** The boards' names, units and kinds (the config file's `devices`, as the node's device list). */
  devices: DeviceList;
  /** The config file, re-read on SIGHUP. */
  config: string;
};

/** What the command line asks for. */
export type Command = { help: true } | { help: false; flags: Record<string, unknown>; config: string };

/** Parses argv (without node and the script); throws SettingError naming the flag. */
export function parseArgs(argv: readonly string[]): Command {
  const flags: Record<string, unknown> = {};
  let config = '';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { help: true };
    const [name, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg];
    const value = () => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new SettingError(`${name}: a value is missing`);
      i++;
      return next;
    };
    if (name === '--config') {
      config = value();
      continue;
    }
    const s = GATEWAY_SETTINGS.find((g) => g.flag === name);
    if (!s) throw new SettingError(`${name}: unknown option (see --help)`);
    flags[s.key] = s.type === 'flag' && inline === undefined ? true : value();
  }
  return { help: false, flags, config };
}

/** The options from the file, the environment and the flags; throws SettingError naming where a bad value came from. */
export function resolveOptions(
  command: { flags: Record<string, unknown>; config: string },
  env: NodeJS.ProcessEnv,
): GatewayOptions {
  const config = command.config || env.TCPMQ_CONFIG || '';
  const file = config ? readConfig(config) : {};
  const raw: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  for (const s of GATEWAY_SETTINGS) {
    const layers: [unknown, string][] = [
      [file[s.key], `${config}: ${s.key}`],
      [env[s.env], s.env],
      [command.flags[s.key], s.flag],
    ];
    for (const [value, where] of layers) {
      if (value === undefined || value === '') continue;
      const { problem } = check(s, value);
      if (problem) throw new SettingError(`${where}: ${problem}`);
      raw[s.key] = value;
      source[s.key] = where;
    }
  }
  const { settings } = readSettings(raw, 'server');
  try {
    parseAllowFrom(settings.allowFrom);
  } catch (err) {
    throw new SettingError(`${source.allowFrom}: ${(err as Error).message}`);
  }
  const own: Record<string, unknown> = {};
  for (const s of OWN) own[s.key] = check(s, raw[s.key]).value ?? s.default;
  if (Boolean(own.tlsCert) !== Boolean(own.tlsKey))
    throw new SettingError('--tls-cert and --tls-key: give both, or neither');
  for (const key of unknownKeys(file)) throw new SettingError(`${config}: unknown setting "${key}"`);
  const { list: devices, problems } = readDeviceList(file.devices);
  if (problems.length > 0) throw new SettingError(`${config}: ${problems[0]}`);
  return { ...settings, ...own, devices, config } as GatewayOptions;
}

/** `--help`: every option, its variable and its default. */
export function helpText(): string {
  const lines = [
    'Usage: tcpmq-gateway [options]',
    '',
    'Runs a TCPMQ broker as a service, sharing its boards through MQTT.',
    '',
  ];
  const rows = GATEWAY_SETTINGS.map((s) => {
    const flag = s.type === 'flag' ? s.flag : `${s.flag} ${valueName(s)}`;
    const fallback = s.default === '' ? '' : ` (default: ${s.default})`;
    return [flag, `${s.help}${fallback}; env ${s.env}`];
  });
  rows.unshift(['--config FILE', "JSON file of settings, keys named as the tcpmq-broker node's; env TCPMQ_CONFIG"]);
  rows.push(['--help', 'this text']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  for (const [flag, text] of rows) lines.push(`  ${flag.padEnd(width)}${text}`);
  lines.push(
    '',
    'A flag wins over the environment, which wins over the file. SIGHUP re-reads the file and applies it.',
  );
  return lines.join('\n');
}

function valueName(s: Setting): string {
  if (s.choices) return s.choices.join('|');
  if (s.type === 'seconds') return 'S';
  if (s.type === 'integer') return s.key === 'publishInterval' ? 'MS' : 'N';
  return /tls|persist/.test(s.key) ? 'FILE' : s.key === 'mqtt' ? 'URL' : /allow/.test(s.key) ? 'LIST' : 'TEXT';
}

function readConfig(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SettingError(`--config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SettingError(`--config ${file}: not JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SettingError(`--config ${file}: not a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function unknownKeys(file: Record<string, unknown>): string[] {
  const known = new Set(GATEWAY_SETTINGS.map((s) => s.key));
  // Settings the node has and the gateway ignores (mode, name, a device list) are not errors.
  const ignored = new Set(['mode', 'name', 'devices', ...CLIENT_ONLY]);
  return Object.keys(file).filter((key) => !known.has(key) && !ignored.has(key));
}
