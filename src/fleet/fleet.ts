/**
 * One fleet across gateways: this broker's mailboxes and devices shared
 * through an MQTT broker, and a replica of every other gateway's, so that a
 * board here reads a board there (docs/PROTOCOL.md, sharing). Replies never
 * wait on MQTT: remote mailboxes are written into the local store as they
 * come, and served from there. No MQTT client here either: the transport
 * (Node-RED's mqtt-broker node, or a test double) is given.
 *
 * Topics under `prefix`, the public contract:
 * - `<prefix>/mailbox/<id>`     retained JSON {value, writtenAt, writer, gateway, expiresAt}; empty = cleared
 * - `<prefix>/device/<id>`      retained JSON {online, lastSeen, gateway, remoteAddress}
 * - `<prefix>/mailbox/<id>/set` any client writes a mailbox, as a flow would
 *
 * Events: 'news' (a remote device's news), 'online' / 'offline' (remote
 * devices), 'state' (connected or not), 'warning'.
 */

import type { ShareHook, TcpmqBroker } from '../broker/broker';
import { Devices, type DeviceRecord } from '../store/devices';
import type { Mailbox } from '../store/mailboxes';
import { printable } from '../protocol/printable';
import type { DeviceId } from '../protocol/request';
import { SafeEmitter, describe } from '../events/safe-emitter';

/** What carries the fleet's messages: an MQTT client's publish and subscribe. */
export interface FleetTransport {
  publish(topic: string, payload: string, retain: boolean): void;
  subscribe(topic: string, onMessage: (topic: string, payload: Buffer) => void): void;
  unsubscribe(topic: string): void;
}

export interface FleetOptions {
  /** The topic prefix (`tcpmq`). */
  prefix: string;
  /** This gateway's name, in every message it publishes. */
  gateway: string;
  /** Publish Home Assistant MQTT discovery for each device of this gateway. */
  haDiscovery: boolean;
  /** The least time between two publishes of one id: a device reporting faster is coalesced (the latest gets out). */
  minIntervalMs: number;
}

/** `<prefix>/mailbox/<id>`, as published. */
export interface SharedMailbox {
  value: unknown;
  /** The value is a Buffer, as base64. */
  buffer?: true;
  writtenAt: number;
  writer: 'device' | 'flow';
  gateway: string;
  expiresAt: number | null;
}

/** `<prefix>/device/<id>`, as published. */
export interface SharedDevice {
  online: boolean;
  lastSeen: number;
  gateway: string;
  remoteAddress: string;
}

/** A device of another gateway, as events carry it. */
export interface RemoteDevice extends DeviceRecord {
  gateway: string;
}

export interface FleetEvents {
  news: { from: DeviceId; payload: unknown; gateway: string };
  online: RemoteDevice;
  offline: RemoteDevice;
  state: { connected: boolean };
  warning: string;
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

/** An id as Home Assistant's object ids allow: letters, digits, `_` and `-`; anything else by its code. */
function objectId(id: DeviceId): string {
  return id.replace(/[^A-Za-z0-9-]/g, (char) => `_${char.codePointAt(0)!.toString(16)}`);
}

export class Fleet extends SafeEmitter<FleetEvents> implements ShareHook {
  /** The devices of other gateways: online while their news is fresh. */
  readonly remote: Devices;
  private readonly gatewayOf = new Map<DeviceId, string>();
  private transport: FleetTransport | undefined;
  private isConnected = false;
  /** Ids whose mailbox or device changed here and are not published yet. */
  private readonly dirtyMailboxes = new Set<DeviceId>();
  private readonly dirtyDevices = new Set<DeviceId>();
  /** When each id was last published, oldest first; only the last minIntervalMs are kept. */
  private readonly lastPublished = new Map<DeviceId, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly discovered = new Set<DeviceId>();
  /** Messages published, for the benchmark and the sidebar. */
  readonly counters = { published: 0, received: 0 };

  constructor(
    private readonly broker: TcpmqBroker,
    readonly options: FleetOptions,
  ) {
    super();
    this.remote = new Devices(
      broker.options.offlineAfter * 1000,
      (device) => this.remoteWentOffline(device),
      broker.options.maxDevices,
    );
  }

  get connected(): boolean {
    return this.isConnected;
  }

  get gateway(): string {
    return this.options.gateway;
  }

  /** The gateway a device lives on (this one, if it is not another's). */
  gatewayFor(id: DeviceId): string {
    return this.gatewayOf.get(id) ?? this.options.gateway;
  }

  /** Starts sharing over `transport`: subscribes, and hears this broker's changes. */
  attach(transport: FleetTransport): void {
    this.detach();
    this.transport = transport;
    const { prefix } = this.options;
    transport.subscribe(`${prefix}/mailbox/+`, (topic, payload) =>
      this.safely(() => this.mailboxMessage(topic, payload)),
    );
    transport.subscribe(`${prefix}/mailbox/+/set`, (topic, payload) =>
      this.safely(() => this.setMessage(topic, payload)),
    );
    transport.subscribe(`${prefix}/device/+`, (topic, payload) =>
      this.safely(() => this.deviceMessage(topic, payload)),
    );
    this.broker.setShare(this);
    this.remote.startSweeping();
  }

  /** Stops sharing: no more publishes or subscriptions; the replica stays (a deploy attaches again). */
  detach(): void {
    const transport = this.transport;
    this.transport = undefined;
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    this.remote.stopSweeping();
    this.broker.setShare(undefined);
    if (!transport) return;
    const { prefix } = this.options;
    for (const topic of [`${prefix}/mailbox/+`, `${prefix}/mailbox/+/set`, `${prefix}/device/+`])
      transport.unsubscribe(topic);
    this.setConnected(false);
  }

  /**
   * The transport is connected (again): this gateway publishes its current
   * state; the retained state of the others comes in through the subscriptions.
   */
  setConnected(connected: boolean): void {
    if (connected === this.isConnected) return;
    this.isConnected = connected;
    if (connected) {
      for (const [id, mailbox] of this.broker.mailboxes.entries())
        if (mailbox.gateway === undefined) this.dirtyMailboxes.add(id);
      for (const id of this.broker.devices.ids()) this.dirtyDevices.add(id);
      this.discovered.clear();
      this.lastPublished.clear();
      this.scheduleFlush();
    }
    this.safeEmit('state', { connected });
  }

  // ---- this broker's changes (ShareHook) -------------------------------------

  written(id: DeviceId, mailbox: Mailbox | undefined): void {
    if (mailbox?.gateway !== undefined) return; // taken in from the fleet: never sent back
    this.gatewayOf.delete(id);
    this.dirtyMailboxes.add(id);
    this.scheduleFlush();
  }

  device(record: DeviceRecord): void {
    this.dirtyDevices.add(record.id);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || !this.transport || !this.isConnected) return;
    // Often enough that a value crosses within a few tens of ms; each id at most every minIntervalMs.
    this.flushTimer = setInterval(() => this.safely(() => this.flush()), 20);
  }

  /** Publishes what changed, each id at most every minIntervalMs (the latest value of a busy id waits its turn). */
  private flush(): void {
    const transport = this.transport;
    if (!transport || !this.isConnected) return;
    const now = Date.now();
    const { prefix, minIntervalMs } = this.options;
    for (const [id, at] of this.lastPublished) {
      // The rest were published later.
      if (now - at < minIntervalMs) break;
      this.lastPublished.delete(id);
    }
    for (const id of this.dirtyMailboxes) {
      if (this.lastPublished.has(id)) continue; // published less than minIntervalMs ago: its turn comes
      this.dirtyMailboxes.delete(id);
      this.lastPublished.set(id, now);
      const mailbox = this.broker.mailboxes.read(id, now);
      transport.publish(
        `${prefix}/mailbox/${topicLevel(id)}`,
        mailbox && mailbox.gateway === undefined ? JSON.stringify(this.shared(mailbox)) : '',
        true,
      );
      this.counters.published++;
    }
    for (const id of this.dirtyDevices) {
      this.dirtyDevices.delete(id);
      const record = this.broker.devices.get(id);
      if (!record) continue;
      const device: SharedDevice = {
        online: record.online,
        lastSeen: record.lastSeen,
        gateway: this.options.gateway,
        remoteAddress: record.remoteAddress,
      };
      transport.publish(`${prefix}/device/${topicLevel(id)}`, JSON.stringify(device), true);
      this.counters.published++;
      if (this.options.haDiscovery && !this.discovered.has(id)) this.discover(id);
    }
    if (this.dirtyMailboxes.size === 0 && this.dirtyDevices.size === 0 && this.flushTimer) {
      clearInterval(this.flushTimer);
      this.flushTimer = undefined;
    }
  }

  private shared(mailbox: Mailbox): SharedMailbox {
    // A device's news expires where it is read when the device has been silent for offlineAfter.
    const expiresAt =
      mailbox.writer === 'device'
        ? mailbox.writtenAt + this.broker.options.offlineAfter * 1000
        : Number.isFinite(mailbox.expiresAt)
          ? mailbox.expiresAt
          : null;
    const { value, writtenAt, writer } = mailbox;
    if (Buffer.isBuffer(value))
      return {
        value: value.toString('base64'),
        buffer: true,
        writtenAt,
        writer,
        gateway: this.options.gateway,
        expiresAt,
      };
    return { value, writtenAt, writer, gateway: this.options.gateway, expiresAt };
  }

  /** Home Assistant's MQTT discovery: the device appears as a sensor, available while online. */
  private discover(id: DeviceId): void {
    this.discovered.add(id);
    const { prefix, gateway } = this.options;
    const level = topicLevel(id);
    const config = {
      name: `TCPMQ ${id}`,
      unique_id: `tcpmq_${objectId(id)}`,
      object_id: `tcpmq_${objectId(id)}`,
      state_topic: `${prefix}/mailbox/${level}`,
      value_template: '{{ value_json.value }}',
      availability_topic: `${prefix}/device/${level}`,
      availability_template: "{{ 'online' if value_json.online else 'offline' }}",
      payload_available: 'online',
      payload_not_available: 'offline',
      device: {
        identifiers: [`tcpmq_${objectId(id)}`],
        name: `TCPMQ device ${id}`,
        via_device: `tcpmq_gateway_${objectId(gateway)}`,
      },
    };
    this.transport?.publish(`homeassistant/sensor/tcpmq_${objectId(id)}/config`, JSON.stringify(config), true);
    this.counters.published++;
  }

  // ---- the fleet's messages ---------------------------------------------------

  private mailboxMessage(topic: string, payload: Buffer): void {
    const id = this.idIn(topic, 2);
    if (id === undefined) return;
    this.counters.received++;
    const now = Date.now();
    const current = this.broker.mailboxes.read(id, now);
    if (payload.length === 0) {
      // Cleared by its gateway, or by anyone with an empty retained message: a device's own news here stays.
      if (current && (current.gateway !== undefined || current.writer === 'flow')) this.broker.mailboxes.clear(id);
      return;
    }
    const shared = JSON.parse(payload.toString('utf8')) as SharedMailbox;
    if (
      typeof shared !== 'object' ||
      shared === null ||
      typeof shared.writtenAt !== 'number' ||
      typeof shared.gateway !== 'string'
    ) {
      throw new Error(`not a mailbox message: ${printable(payload.toString('utf8'))}`);
    }
    if (shared.gateway === this.options.gateway) return; // this gateway's own, retained
    // Last writer wins; the gateway name breaks a tie.
    if (current) {
      const currentGateway = current.gateway ?? this.options.gateway;
      if (
        current.writtenAt > shared.writtenAt ||
        (current.writtenAt === shared.writtenAt && currentGateway >= shared.gateway)
      )
        return;
    }
    const writer = shared.writer === 'flow' ? 'flow' : 'device';
    const expiresAt =
      writer === 'device' ? shared.writtenAt + this.broker.options.offlineAfter * 1000 : shared.expiresAt;
    if (expiresAt !== null && expiresAt <= now) {
      if (current) this.broker.mailboxes.clear(id);
      return;
    }
    const value = shared.buffer ? Buffer.from(String(shared.value), 'base64') : shared.value;
    const mailbox = this.broker.mailboxes.write(
      id,
      value,
      writer,
      shared.writtenAt,
      expiresAt === null ? 0 : expiresAt - shared.writtenAt,
    );
    mailbox.gateway = shared.gateway;
    this.gatewayOf.set(id, shared.gateway);
    if (writer === 'device') {
      // The broker's settings may have changed since (a deploy): the remote devices follow them.
      this.remote.setOfflineAfter(this.broker.options.offlineAfter * 1000);
      const cameOnline = this.remote.heard(
        id,
        { remoteAddress: '', remotePort: 0, connectionId: 0 },
        value,
        shared.writtenAt,
      );
      if (cameOnline) this.safeEmit('online', this.remoteRecord(cameOnline));
      this.safeEmit('news', { from: id, payload: value, gateway: shared.gateway });
    }
  }

  /** Any MQTT client writes a mailbox, as a flow would (every gateway that hears it writes it). */
  private setMessage(topic: string, payload: Buffer): void {
    const id = this.idIn(topic, 3);
    if (id === undefined) return;
    this.counters.received++;
    const text = payload.toString('utf8');
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // Not JSON: the text itself.
    }
    if (value === null || text === '') this.broker.clearMailbox(id);
    else this.broker.writeMailbox(id, value);
  }

  private deviceMessage(topic: string, payload: Buffer): void {
    const id = this.idIn(topic, 2);
    if (id === undefined || payload.length === 0) return;
    this.counters.received++;
    const shared = JSON.parse(payload.toString('utf8')) as SharedDevice;
    if (typeof shared !== 'object' || shared === null || shared.gateway === this.options.gateway) return;
    this.gatewayOf.set(id, String(shared.gateway));
    const record = this.remote.get(id);
    if (!shared.online) {
      const wentOffline = this.remote.wentOffline(id);
      if (wentOffline) this.remoteWentOffline(wentOffline);
    } else if (record) record.remoteAddress = String(shared.remoteAddress ?? '');
  }

  private remoteWentOffline(device: DeviceRecord): void {
    const mailbox = this.broker.mailboxes.read(device.id, Date.now());
    if (mailbox?.gateway !== undefined && mailbox.writer === 'device') this.broker.mailboxes.clear(device.id);
    this.safeEmit('offline', this.remoteRecord(device));
  }

  private remoteRecord(device: DeviceRecord): RemoteDevice {
    return { ...structuredClone(device), gateway: this.gatewayFor(device.id) };
  }

  /** The id of a topic `<prefix>/<kind>/<id>[/set]` whose id level is at `index` (from the end), if it is one of ours. */
  private idIn(topic: string, levelsAfterPrefix: number): DeviceId | undefined {
    const rest = topic.slice(this.options.prefix.length + 1).split('/');
    return rest.length === levelsAfterPrefix ? idOfLevel(rest[1]) : undefined;
  }

  /** A bad message from the MQTT broker is a warning, never an exception in its client. */
  private safely(action: () => void): void {
    try {
      action();
    } catch (err) {
      this.warn(`sharing: ${describe(err)}`);
    }
  }
}
