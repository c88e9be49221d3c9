/**
 * One fleet across gateways: this broker's mailboxes and devices shared
 * through an MQTT broker, and a replica of every other gateway's, so that a
 * board here reads a board there (docs/PROTOCOL.md, sharing). Replies never
 * wait on MQTT: remote mailboxes are written into the local store as they
 * come, and served from there. No MQTT client here either: the transport
 * (Node-RED's mqtt-broker node, MQTT.js in the gateway, or a test double) is
 * given. Topics and their payloads: topics.ts; Home Assistant: discovery.ts.
 *
 * A broker that never listens and shares only what flows write is how Node-RED
 * attaches to a fleet served by gateways elsewhere (tcpmq-broker mode `fleet`).
 *
 * Events: 'news' (a remote device's news), 'raw' (a remote plain-text line,
 * with `followRaw`), 'online' / 'offline' (remote devices), 'state'
 * (connected or not), 'warning'.
 */

import type { ConnectionInfo, RawEvent, ShareHook, TcpmqBroker } from '../broker/broker';
import { SafeEmitter, describe } from '../events/safe-emitter';
import { isText, printable } from '../protocol/printable';
import type { DeviceId } from '../protocol/request';
import { Devices, type DeviceRecord } from '../store/devices';
import { mailboxJson, mailboxValue } from '../store/mailbox-codec';
import type { Mailbox } from '../store/mailboxes';
import { describeDevice, type DeviceList } from '../settings/device-list';
import { VERSION } from '../settings/version';
import { boardDiscovery, boardRemoval, gatewayDiscovery, type DiscoveryMessage } from './discovery';
import {
  fleetTopics,
  idOfLevel,
  levelsAfter,
  type FleetTopics,
  type SharedCommand,
  type SharedDevice,
  type SharedGateway,
  type SharedMailbox,
  type SharedRaw,
} from './topics';

export { idOfLevel, topicLevel } from './topics';
export type { SharedDevice, SharedMailbox } from './topics';

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
  /**
   * The least time between two publishes of one id: a device reporting faster
   * is coalesced (the latest gets out). 0: every report, as soon as it is answered.
   */
  minIntervalMs: number;
  /** Take in the plain-text lines of every gateway ('raw' events): a Node-RED attached in fleet mode. */
  followRaw?: boolean;
  /** Names, units and kinds of this gateway's boards (the device list). */
  devices?: DeviceList;
  /**
   * Publish this gateway's retained state `<prefix>/gateway/<name>` (online, version, counters) on
   * connecting and every 30 s; `model` names the host in Home Assistant (`tcpmq-gateway`, `Node-RED`).
   */
  announce?: { model: string; startedAt: number; counters?: () => Record<string, number> };
}

/** How often a gateway's retained state is refreshed. */
const ANNOUNCE_EVERY_MS = 30_000;

/** A device of another gateway, as events carry it. */
export interface RemoteDevice extends DeviceRecord {
  gateway: string;
}

/** A remote device's news, with what its gateway said of the request. */
export interface RemoteNews {
  from: DeviceId;
  payload: unknown;
  gateway: string;
  want?: DeviceId;
  connectionId?: number;
  remoteAddress?: string;
  remotePort?: number;
}

export interface FleetEvents {
  news: RemoteNews;
  raw: RawEvent & { gateway: string };
  online: RemoteDevice;
  offline: RemoteDevice;
  state: { connected: boolean };
  warning: string;
}

/** What a request that wrote a mailbox here said besides its news (published with it). */
interface RequestOrigin {
  want: DeviceId;
  connection: ConnectionInfo;
}

export class Fleet extends SafeEmitter<FleetEvents> implements ShareHook {
  /** The devices of other gateways: online while their news is fresh. */
  readonly remote: Devices;
  readonly topics: FleetTopics;
  private readonly gatewayOf = new Map<DeviceId, string>();
  /** Names and units other gateways give their boards (their device topics). */
  private readonly remoteNames = new Map<DeviceId, { name?: string; unit?: string }>();
  private transport: FleetTransport | undefined;
  private subscribed: string[] = [];
  private isConnected = false;
  /** Ids whose mailbox or device changed here and are not published yet. */
  private readonly dirtyMailboxes = new Set<DeviceId>();
  private readonly dirtyDevices = new Set<DeviceId>();
  /** The request behind each dirty mailbox a device wrote. */
  private readonly origins = new Map<DeviceId, RequestOrigin>();
  /** When each id was last published, oldest first; only the last minIntervalMs are kept. */
  private readonly lastPublished = new Map<DeviceId, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushSoon: NodeJS.Immediate | undefined;
  private readonly discovered = new Set<DeviceId>();
  /** The mailbox each board of this gateway reads (its `want`), for Home Assistant's command entity. */
  private readonly reads = new Map<DeviceId, DeviceId>();
  /** When each device topic of this gateway was last published: lastSeen is refreshed every offlineAfter / 2. */
  private readonly devicePublished = new Map<DeviceId, number>();
  private announceTimer: NodeJS.Timeout | undefined;
  private detachRaw: (() => void) | undefined;
  /** Messages published and taken in, for the benchmark and the sidebar. */
  readonly counters = { published: 0, received: 0 };

  constructor(
    private readonly broker: TcpmqBroker,
    readonly options: FleetOptions,
  ) {
    super();
    this.topics = fleetTopics(options.prefix);
    const { offlineAfter, maxDevices } = broker.options;
    this.remote = new Devices(offlineAfter * 1000, (device) => this.remoteWentOffline(device), maxDevices);
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

  /** The name and unit of board `id`: this gateway's device list, or what the board's own gateway says. */
  describe(id: DeviceId): { name?: string; unit?: string } {
    return this.gatewayOf.has(id) ? (this.remoteNames.get(id) ?? {}) : describeDevice(this.options.devices, id);
  }

  /** Whether another gateway's device or mailbox is known under `id`. */
  isRemote(id: DeviceId): boolean {
    return this.gatewayOf.has(id);
  }

  /** Starts sharing over `transport`: subscribes, and hears this broker's changes. */
  attach(transport: FleetTransport): void {
    this.detach();
    this.transport = transport;
    const { filters, command } = this.topics;
    const own = this.options.gateway;
    const routes: [string, (topic: string, payload: Buffer) => void][] = [
      [filters.mailboxes, (topic, payload) => this.mailboxMessage(topic, payload)],
      [filters.sets, (topic, payload) => this.setMessage(topic, payload)],
      [filters.devices, (topic, payload) => this.deviceMessage(topic, payload)],
      [filters.gateways, (topic, payload) => this.gatewayMessage(topic, payload)],
      [command(own, 'send'), (_topic, payload) => this.commandMessage('send', payload)],
      [command(own, 'close'), (_topic, payload) => this.commandMessage('close', payload)],
    ];
    if (this.options.followRaw) routes.push([filters.raw, (topic, payload) => this.rawMessage(topic, payload)]);
    for (const [filter, route] of routes) {
      transport.subscribe(filter, (topic, payload) => this.safely(() => route(topic, payload)));
      this.subscribed.push(filter);
    }
    this.broker.setShare(this);
    this.detachRaw = this.broker.listen({ raw: (event) => this.publishRaw(event) });
    this.remote.startSweeping();
  }

  /** Stops sharing: no more publishes or subscriptions; the replica stays (a deploy attaches again). */
  detach(): void {
    const transport = this.transport;
    this.transport = undefined;
    this.stopFlushing();
    this.remote.stopSweeping();
    this.broker.setShare(undefined);
    this.detachRaw?.();
    this.detachRaw = undefined;
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.announceTimer = undefined;
    if (!transport) return;
    for (const topic of this.subscribed) transport.unsubscribe(topic);
    this.subscribed = [];
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
      for (const [id, mailbox] of this.broker.mailboxes.entries()) {
        if (mailbox.gateway === undefined) this.dirtyMailboxes.add(id);
      }
      for (const id of this.broker.devices.ids()) this.dirtyDevices.add(id);
      this.discovered.clear();
      this.lastPublished.clear();
      this.scheduleFlush();
      this.announce();
    }
    this.safeEmit('state', { connected });
  }

  /** Writes to (or closes) connections on the gateway `gateway`, through its command topic. */
  command(gateway: string, command: 'send' | 'close', target: SharedCommand): void {
    if (!this.transport || !this.isConnected) throw new Error('sharing is not connected');
    this.transport.publish(this.topics.command(gateway, command), JSON.stringify(target), false);
    this.counters.published++;
  }

  // ---- this broker's changes (ShareHook) -------------------------------------

  written(id: DeviceId, mailbox: Mailbox | undefined, want?: DeviceId, connection?: ConnectionInfo): void {
    if (mailbox?.gateway !== undefined) return; // taken in from the fleet: never sent back
    this.gatewayOf.delete(id);
    this.dirtyMailboxes.add(id);
    if (want !== undefined && connection) {
      this.origins.set(id, { want, connection });
      if (this.options.haDiscovery) this.reads.set(id, want);
      // A board reporting on: its device topic's lastSeen stays within offlineAfter / 2 of the truth.
      const published = this.devicePublished.get(id);
      if (published !== undefined && Date.now() - published >= this.broker.options.offlineAfter * 500) {
        this.dirtyDevices.add(id);
      }
    } else this.origins.delete(id);
    this.scheduleFlush();
  }

  evicted(id: DeviceId): void {
    this.devicePublished.delete(id);
    this.reads.delete(id);
    if (this.discovered.delete(id)) this.publishAll(boardRemoval(id));
  }

  /**
   * A new device list: boards whose listing changed are announced again to
   * Home Assistant; a listed id that is not a board of this gateway is removed.
   */
  setDevices(devices: DeviceList | undefined): void {
    const before = this.options.devices;
    this.options.devices = devices;
    const ids = new Set([...(before?.keys() ?? []), ...(devices?.keys() ?? [])]);
    for (const id of ids) {
      if (JSON.stringify(before?.get(id)) === JSON.stringify(devices?.get(id))) continue;
      if (this.broker.devices.get(id)) {
        this.discovered.delete(id);
        this.dirtyDevices.add(id);
      } else if (this.discovered.delete(id) || !devices?.has(id)) this.publishAll(boardRemoval(id));
    }
    this.scheduleFlush();
  }

  device(record: DeviceRecord): void {
    this.dirtyDevices.add(record.id);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.transport || !this.isConnected) return;
    if (this.options.minIntervalMs <= 0) {
      // Every report: once the reply is written (this runs before it), never in its way.
      this.flushSoon ??= setImmediate(() => {
        this.flushSoon = undefined;
        this.safely(() => this.flush());
      });
      return;
    }
    // Often enough that a value crosses within a few tens of ms; each id at most every minIntervalMs.
    this.flushTimer ??= setInterval(() => this.safely(() => this.flush()), 20);
  }

  private stopFlushing(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.flushSoon) clearImmediate(this.flushSoon);
    this.flushTimer = undefined;
    this.flushSoon = undefined;
  }

  /** Publishes what changed, each id at most every minIntervalMs (the latest value of a busy id waits its turn). */
  private flush(): void {
    const transport = this.transport;
    if (!transport || !this.isConnected) return;
    const now = Date.now();
    const { minIntervalMs } = this.options;
    for (const [id, at] of this.lastPublished) {
      // The rest were published later.
      if (now - at < minIntervalMs) break;
      this.lastPublished.delete(id);
    }
    for (const id of this.dirtyMailboxes) {
      if (this.lastPublished.has(id)) continue; // published less than minIntervalMs ago: its turn comes
      this.dirtyMailboxes.delete(id);
      if (minIntervalMs > 0) this.lastPublished.set(id, now);
      const mailbox = this.broker.mailboxes.read(id, now);
      const own = mailbox && mailbox.gateway === undefined ? JSON.stringify(this.shared(id, mailbox)) : '';
      this.origins.delete(id);
      transport.publish(this.topics.mailbox(id), own, true);
      this.counters.published++;
    }
    for (const id of this.dirtyDevices) {
      this.dirtyDevices.delete(id);
      const record = this.broker.devices.get(id);
      if (!record) continue;
      const { online, lastSeen, remoteAddress } = record;
      const named = describeDevice(this.options.devices, id);
      const device: SharedDevice = { online, lastSeen, gateway: this.options.gateway, remoteAddress, ...named };
      transport.publish(this.topics.device(id), JSON.stringify(device), true);
      this.devicePublished.delete(id); // kept in publish order, oldest first
      this.devicePublished.set(id, now);
      this.counters.published++;
      if (this.options.haDiscovery && !this.discovered.has(id)) this.discover(id, record.lastValue);
    }
    if (this.dirtyMailboxes.size === 0 && this.dirtyDevices.size === 0) this.stopFlushing();
  }

  private shared(id: DeviceId, mailbox: Mailbox): SharedMailbox {
    const shared: SharedMailbox = { ...mailboxJson(mailbox), gateway: this.options.gateway };
    // A device's news expires where it is read when the device has been silent for offlineAfter.
    if (mailbox.writer === 'device') shared.expiresAt = mailbox.writtenAt + this.broker.options.offlineAfter * 1000;
    const origin = this.origins.get(id);
    if (origin) {
      const { connectionId, remoteAddress, remotePort } = origin.connection;
      Object.assign(shared, { want: origin.want, connectionId, remoteAddress, remotePort });
    }
    return shared;
  }

  private publishRaw(event: RawEvent): void {
    if (!this.transport || !this.isConnected) return;
    const { connectionId, remoteAddress, remotePort, bytes } = event;
    const text = isText(bytes);
    const raw: SharedRaw = {
      gateway: this.options.gateway,
      connectionId,
      remoteAddress,
      remotePort,
      data: text ? bytes.toString('utf8') : bytes.toString('base64'),
      ...(text ? {} : { buffer: true as const }),
    };
    this.transport.publish(this.topics.raw(this.options.gateway), JSON.stringify(raw), false);
    this.counters.published++;
  }

  private discover(id: DeviceId, value: unknown): void {
    this.discovered.add(id);
    const numeric = typeof value === 'number' || (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value));
    const facts = { id, listed: this.options.devices?.get(id), numeric, reads: this.reads.get(id) };
    this.publishAll(boardDiscovery(this.discoveryContext(), facts));
  }

  private discoveryContext() {
    const { prefix, gateway, announce } = this.options;
    const expireAfter = Math.ceil(this.broker.options.offlineAfter) + 5;
    return { prefix, gateway, version: VERSION, model: announce?.model ?? 'TCPMQ broker', expireAfter };
  }

  /** This gateway's retained state, now and every 30 s; with Home Assistant, the gateway as a device. */
  private announce(): void {
    const announce = this.options.announce;
    if (!announce) return;
    const publish = () => {
      if (!this.transport || !this.isConnected) return;
      const state = { online: true, version: VERSION, startedAt: announce.startedAt, counters: announce.counters?.() };
      this.transport.publish(this.topics.gateway(this.options.gateway), JSON.stringify(state), true);
      this.counters.published++;
    };
    publish();
    if (this.options.haDiscovery) this.publishAll([gatewayDiscovery(this.discoveryContext())]);
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.announceTimer = setInterval(() => this.safely(publish), ANNOUNCE_EVERY_MS);
    this.announceTimer.unref?.();
  }

  private publishAll(messages: DiscoveryMessage[]): void {
    if (!this.transport || !this.isConnected) return;
    for (const { topic, payload } of messages) this.transport.publish(topic, payload, true);
    this.counters.published += messages.length;
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
    if (typeof shared !== 'object' || shared === null || typeof shared.writtenAt !== 'number') {
      throw new Error(`not a mailbox message: ${printable(payload.toString('utf8'))}`);
    }
    if (typeof shared.gateway !== 'string') throw new Error(`mailbox message without a gateway: ${printable(topic)}`);
    const writer = shared.writer === 'flow' ? 'flow' : 'device';
    // This gateway's own, retained: only what a flow wrote is taken back (after a restart it holds nothing).
    if (shared.gateway === this.options.gateway && (writer === 'device' || current)) return;
    // Last writer wins; the gateway name breaks a tie.
    if (current) {
      const currentGateway = current.gateway ?? this.options.gateway;
      if (current.writtenAt > shared.writtenAt) return;
      if (current.writtenAt === shared.writtenAt && currentGateway >= shared.gateway) return;
    }
    const expiresAt =
      writer === 'device' ? shared.writtenAt + this.broker.options.offlineAfter * 1000 : shared.expiresAt;
    if (expiresAt !== null && expiresAt <= now) {
      if (current) this.broker.mailboxes.clear(id);
      return;
    }
    const value = mailboxValue(shared);
    const ttl = expiresAt === null ? 0 : expiresAt - shared.writtenAt;
    this.broker.mailboxes.write(id, value, writer, shared.writtenAt, ttl, undefined, shared.gateway);
    this.gatewayOf.set(id, shared.gateway);
    if (writer === 'device') this.remoteNews(id, value, shared);
  }

  private remoteNews(id: DeviceId, value: unknown, shared: SharedMailbox): void {
    // The broker's settings may have changed since (a deploy): the remote devices follow them.
    this.remote.setOfflineAfter(this.broker.options.offlineAfter * 1000);
    this.remote.setMaxDevices(this.broker.options.maxDevices);
    const { want, connectionId, remoteAddress, remotePort, gateway } = shared;
    const sender = { remoteAddress: remoteAddress ?? '', remotePort: remotePort ?? 0, connectionId: connectionId ?? 0 };
    const cameOnline = this.remote.heard(id, sender, value, shared.writtenAt);
    if (cameOnline) this.safeEmit('online', this.remoteRecord(cameOnline));
    this.safeEmit('news', { from: id, payload: value, gateway, want, connectionId, remoteAddress, remotePort });
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
    const { name, unit } = shared;
    if (typeof name === 'string' || typeof unit === 'string') {
      this.remoteNames.set(id, { ...(name ? { name: String(name) } : {}), ...(unit ? { unit: String(unit) } : {}) });
    } else this.remoteNames.delete(id);
    const record = this.remote.get(id);
    if (!shared.online) {
      const wentOffline = this.remote.wentOffline(id);
      if (wentOffline) this.remoteWentOffline(wentOffline);
    } else if (record) record.remoteAddress = String(shared.remoteAddress ?? '');
  }

  /** A gateway's own state: when it says offline (its will), its devices are offline here at once. */
  private gatewayMessage(topic: string, payload: Buffer): void {
    const levels = levelsAfter(this.options.prefix, topic);
    if (!levels || levels.length !== 2 || payload.length === 0) return;
    const gateway = idOfLevel(levels[1]);
    if (gateway === this.options.gateway) return;
    const state = JSON.parse(payload.toString('utf8')) as SharedGateway;
    if (state?.online !== false) return;
    for (const [id, owner] of this.gatewayOf) {
      if (owner !== gateway) continue;
      const wentOffline = this.remote.wentOffline(id);
      if (wentOffline) this.remoteWentOffline(wentOffline);
    }
  }

  private rawMessage(topic: string, payload: Buffer): void {
    if (levelsAfter(this.options.prefix, topic)?.length !== 2) return;
    const raw = JSON.parse(payload.toString('utf8')) as SharedRaw;
    if (typeof raw !== 'object' || raw === null || typeof raw.data !== 'string') return;
    if (raw.gateway === this.options.gateway) return;
    this.counters.received++;
    const bytes = raw.buffer ? Buffer.from(raw.data, 'base64') : Buffer.from(raw.data, 'utf8');
    const where = { connectionId: Number(raw.connectionId) || 0, remotePort: Number(raw.remotePort) || 0 };
    const remoteAddress = String(raw.remoteAddress ?? '');
    this.safeEmit('raw', { ...where, remoteAddress, bytes, isText: !raw.buffer, gateway: String(raw.gateway) });
  }

  /** A flow elsewhere writes to or closes connections of this gateway. */
  private commandMessage(command: 'send' | 'close', payload: Buffer): void {
    this.counters.received++;
    const { connectionId, device, data, buffer } = JSON.parse(payload.toString('utf8')) as SharedCommand;
    const target = typeof connectionId === 'number' ? { connectionId } : { device: String(device ?? '') };
    if (command === 'close') this.broker.closeConnections(target);
    else this.broker.send(target, buffer ? Buffer.from(String(data), 'base64') : String(data ?? ''));
  }

  private remoteWentOffline(device: DeviceRecord): void {
    const mailbox = this.broker.mailboxes.read(device.id, Date.now());
    if (mailbox?.gateway !== undefined && mailbox.writer === 'device') this.broker.mailboxes.clear(device.id);
    this.safeEmit('offline', this.remoteRecord(device));
  }

  private remoteRecord(device: DeviceRecord): RemoteDevice {
    return { ...structuredClone(device), gateway: this.gatewayFor(device.id) };
  }

  /** The id of a topic `<prefix>/<kind>/<id>[/set]` with `levels` levels after the prefix. */
  private idIn(topic: string, levels: number): DeviceId | undefined {
    const rest = levelsAfter(this.options.prefix, topic);
    return rest?.length === levels ? idOfLevel(rest[1]) : undefined;
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
