/**
 * The fleet's topics and what they carry: the public contract between gateways
 * (docs/PROTOCOL.md, sharing). An id is one topic level, reversibly encoded.
 */

import type { DeviceId } from '../protocol/request';
import { defaults } from '../settings/schema';
import type { MailboxJson } from '../store/mailbox-codec';

/** `<prefix>/mailbox/<id>`, retained: a mailbox as its gateway holds it. */
export interface SharedMailbox extends MailboxJson {
  gateway: string;
  /** For a device's own news: the request that wrote it (what it asked for, where it spoke from). */
  want?: DeviceId;
  connectionId?: number;
  remoteAddress?: string;
  remotePort?: number;
}

/** `<prefix>/device/<id>`, retained. */
export interface SharedDevice {
  online: boolean;
  lastSeen: number;
  gateway: string;
  remoteAddress: string;
  /** From the gateway's device list, when the board is listed there. */
  name?: string;
  unit?: string;
}

/** `<prefix>/raw/<gateway>`: a line or chunk from a plain-text connection. */
export interface SharedRaw {
  gateway: string;
  connectionId: number;
  remoteAddress: string;
  remotePort: number;
  /** The bytes as UTF-8 text, or as base64 with `buffer: true` when they are not text. */
  data: string;
  buffer?: true;
}

/** `<prefix>/gateway/<gateway>/send` and `.../close`: a flow elsewhere writes to or closes connections here. */
export interface SharedCommand {
  connectionId?: number;
  device?: string;
  /** send: the bytes, as text or as base64 with `buffer: true`. */
  data?: string;
  buffer?: true;
}

/** The order of a mailbox's writes, the same on every member: writtenAt, then the gateway's name. */
interface WriteKey {
  writtenAt: number;
  gateway: string;
}

/** Whether write `a` comes after write `b` (an equal key is the same write). */
export function isLater(a: WriteKey, b: WriteKey): boolean {
  return a.writtenAt > b.writtenAt || (a.writtenAt === b.writtenAt && a.gateway > b.gateway);
}

/** `<prefix>/gateway/<gateway>`, retained: the gateway's own state (its will says `online: false`). */
export interface SharedGateway {
  online: boolean;
  /** A member with no boards (Node-RED in fleet mode): it never owns a mailbox. */
  attached?: boolean;
  version?: string;
  startedAt?: number;
  /** When this state was published: refreshed every 30 s, so an old one is a gateway gone without a word. */
  at?: number;
  counters?: Record<string, number>;
}

/** Characters an MQTT topic level cannot carry as they are (wildcards, the separator, `$` first, NUL), and `%` itself. */
// eslint-disable-next-line no-control-regex -- NUL is one of them
const TOPIC_UNSAFE = /[%/+#\u0000]|^\$/g;

/** An id as one topic level: reversibly, `a/b` is `a%2Fb`. */
export function topicLevel(id: DeviceId): string {
  if (id === '') return '%';
  return id.replace(TOPIC_UNSAFE, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** The id a topic level names (the inverse of topicLevel). */
export function idOfLevel(level: string): DeviceId {
  if (level === '%') return '';
  return level.replace(/%([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The topic prefix the shareTopic setting gives: without a trailing `/` (none left: the default). */
export function topicPrefix(shareTopic: string): string {
  return shareTopic.replace(/\/+$/, '') || defaults().shareTopic;
}

/** Every topic of a fleet under `prefix`. */
export function fleetTopics(prefix: string) {
  return {
    mailbox: (id: DeviceId) => `${prefix}/mailbox/${topicLevel(id)}`,
    /** A write the id's owner takes (docs/PROTOCOL.md, sharing); with a time to live, in seconds, as one more level. */
    set: (id: DeviceId, ttlSeconds = 0) =>
      `${prefix}/mailbox/${topicLevel(id)}/set${ttlSeconds > 0 ? `/${ttlSeconds}` : ''}`,
    device: (id: DeviceId) => `${prefix}/device/${topicLevel(id)}`,
    raw: (gateway: string) => `${prefix}/raw/${topicLevel(gateway)}`,
    gateway: (gateway: string) => `${prefix}/gateway/${topicLevel(gateway)}`,
    command: (gateway: string, command: 'send' | 'close') => `${prefix}/gateway/${topicLevel(gateway)}/${command}`,
    /** A member's own marker: when it comes back, every retained message came before it. */
    sync: (gateway: string) => `${prefix}/gateway/${topicLevel(gateway)}/sync`,
    /** What a gateway subscribes to. */
    filters: {
      mailboxes: `${prefix}/mailbox/+`,
      sets: `${prefix}/mailbox/+/set/#`,
      devices: `${prefix}/device/+`,
      raw: `${prefix}/raw/+`,
      gateways: `${prefix}/gateway/+`,
    },
  };
}

export type FleetTopics = ReturnType<typeof fleetTopics>;

/** The levels of `topic` after `prefix`, or undefined if it is not under it. */
export function levelsAfter(prefix: string, topic: string): string[] | undefined {
  return topic.startsWith(`${prefix}/`) ? topic.slice(prefix.length + 1).split('/') : undefined;
}
