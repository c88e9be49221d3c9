/**
 * The fleet's outgoing side: what was written on this gateway (its boards'
 * requests, its flows, the `/set`s it owns), published under the fleet's
 * topics. Each id at most every minIntervalMs, the latest value last (0: every
 * report, once answered); device topics on online, offline and reconnect (a
 * report's mailbox message says the board is alive); plain-text lines; the
 * gateway's own state; Home Assistant discovery. It publishes nothing it took
 * in from the fleet, and empties a mailbox only when it was cleared here or
 * its board evicted (docs/PROTOCOL.md, sharing).
 */

import type { RawEvent, TcpmqBroker } from '../broker';
import type { ConnectionInfo } from '../protocol/connection-info';
import { isDecimal } from '../protocol/decimal';
import { isText } from '../protocol/printable';
import type { DeviceId } from '../protocol/request';
import { describeDevice, type DeviceList } from '../settings/device-list';
import { VERSION } from '../settings/version';
import { mailboxJson } from '../store/mailbox-codec';
import type { DeviceRecord } from '../store/devices';
import type { Mailbox } from '../store/mailboxes';
import { boardDiscovery, boardRemoval, gatewayDiscovery, type DiscoveryMessage } from './discovery';
import type { FleetOptions, FleetTransport } from './options';
import type { FleetTopics, SharedCommand, SharedDevice, SharedMailbox, SharedRaw } from './topics';

/** How often a gateway's retained state is refreshed. */
const ANNOUNCE_EVERY_MS = 30_000;

/** What a request that wrote a mailbox here said besides its news (published with it). */
interface RequestOrigin {
  want: DeviceId;
  connection: ConnectionInfo;
}

export class Publisher {
  /** Set while the transport is connected: nothing is published otherwise. */
  transport: FleetTransport | undefined;
  /** Ids whose mailbox or device changed here and are not published yet. */
  private readonly dirtyMailboxes = new Set<DeviceId>();
  /** Dirty ids cleared here: the only mailboxes this gateway empties on MQTT (besides evicted boards). */
  private readonly clearedMailboxes = new Set<DeviceId>();
  private readonly dirtyDevices = new Set<DeviceId>();
  /** The request behind each dirty mailbox a device wrote. */
  private readonly origins = new Map<DeviceId, RequestOrigin>();
  /** When each id was last published, oldest first; only the last minIntervalMs are kept. */
  private readonly lastPublished = new Map<DeviceId, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushSoon: NodeJS.Immediate | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  /** Boards announced to Home Assistant, with the mailbox their command entity writes (the one they read). */
  private readonly discovered = new Map<DeviceId, DeviceId | undefined>();
  /** Messages published, for the benchmark and the sidebar. */
  published = 0;

  constructor(
    private readonly broker: TcpmqBroker,
    private readonly options: FleetOptions,
    private readonly topics: FleetTopics,
    /** Runs a timer's work: nothing may escape from a timer. */
    private readonly safely: (action: () => void) => void,
  ) {}

  /**
   * Connected (again) and in step: this gateway's mailboxes go out anew, but those the MQTT broker holds
   * already (`retainedOwn`: their writtenAt, as retained), and its devices and state. `ownStateRetained`: the
   * MQTT broker kept this gateway's state, so one of its mailboxes published before and missing there now was
   * emptied meanwhile.
   */
  start(transport: FleetTransport, retainedOwn: Map<DeviceId, number>, ownStateRetained: boolean): void {
    this.transport = transport;
    for (const [id, mailbox] of this.broker.mailboxes.entries()) {
      if (mailbox.gateway !== undefined) continue;
      if (retainedOwn.get(id) === mailbox.writtenAt) mailbox.shared = true;
      else if (mailbox.shared && ownStateRetained && !retainedOwn.has(id)) {
        // Published before, gone from an MQTT broker that kept the rest: emptied meanwhile (a clear while this
        // gateway was down, or its own clear that persist had not saved). Not brought back.
        this.broker.mailboxes.clear(id);
      } else this.dirtyMailboxes.add(id);
    }
    for (const id of this.broker.devices.ids()) this.dirtyDevices.add(id);
    this.discovered.clear();
    this.lastPublished.clear();
    this.scheduleFlush();
    this.announce();
  }

  /** Disconnected or detached: the timers stop; what changes meanwhile is published on the next start(). */
  stop(): void {
    this.transport = undefined;
    this.stopFlushing();
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.announceTimer = undefined;
  }

  /** Mailbox `id` was written here (see ShareHook.written). */
  mailbox(id: DeviceId, want?: DeviceId, connection?: ConnectionInfo): void {
    this.dirtyMailboxes.add(id);
    this.clearedMailboxes.delete(id);
    if (want !== undefined && connection) {
      this.origins.set(id, { want, connection });
      // A board that reads another mailbox now: its Home Assistant command entity follows.
      if (this.discovered.has(id) && this.discovered.get(id) !== want) this.dirtyDevices.add(id);
    } else this.origins.delete(id);
    this.scheduleFlush();
  }

  /** Mailbox `id` was cleared here: its retained message goes (empty). */
  cleared(id: DeviceId): void {
    this.dirtyMailboxes.add(id);
    this.clearedMailboxes.add(id);
    this.origins.delete(id);
    this.scheduleFlush();
  }

  /** A write for the owner of `id` (see Fleet.write). */
  set(transport: FleetTransport, id: DeviceId, payload: string, ttlSeconds: number): void {
    transport.publish(this.topics.set(id, ttlSeconds), payload, false);
    this.published++;
  }

  device(id: DeviceId): void {
    this.dirtyDevices.add(id);
    this.scheduleFlush();
  }

  /** Board `id` was dropped from a full table: its retained device and (unless another's) mailbox go. */
  evicted(id: DeviceId): void {
    this.dirtyDevices.delete(id);
    const removal = [{ topic: this.topics.device(id), payload: '' }];
    const held = this.broker.mailboxes.read(id, Date.now());
    if (!held) {
      this.dirtyMailboxes.delete(id);
      removal.push({ topic: this.topics.mailbox(id), payload: '' });
    }
    if (this.discovered.delete(id)) removal.push(...boardRemoval(id));
    this.publishAll(removal);
  }

  /** The device list changed from `before`: boards listed otherwise are announced again, or removed. */
  devicesChanged(before: DeviceList | undefined, after: DeviceList | undefined): void {
    for (const id of new Set([...(before?.keys() ?? []), ...(after?.keys() ?? [])])) {
      if (JSON.stringify(before?.get(id)) === JSON.stringify(after?.get(id))) continue;
      if (this.broker.devices.get(id)) {
        this.discovered.delete(id);
        this.dirtyDevices.add(id);
      } else if (this.discovered.delete(id) || !after?.has(id)) this.publishAll(boardRemoval(id));
    }
    this.scheduleFlush();
  }

  /** A line of a plain-text board here. */
  raw(event: RawEvent): void {
    if (!this.transport) return;
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
    this.published++;
  }

  /** Writes to (or closes) connections on gateway `gateway`, through its command topic. */
  command(gateway: string, command: 'send' | 'close', target: SharedCommand): void {
    if (!this.transport) throw new Error('sharing is not connected');
    this.transport.publish(this.topics.command(gateway, command), JSON.stringify(target), false);
    this.published++;
  }

  private scheduleFlush(): void {
    if (!this.transport) return;
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
    if (!transport) return;
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
      const cleared = this.clearedMailboxes.delete(id);
      let payload: string | undefined;
      if (mailbox && mailbox.gateway === undefined) payload = JSON.stringify(this.shared(id, mailbox));
      else if (cleared && !mailbox) payload = '';
      this.origins.delete(id);
      // Another gateway's now, or expired here (every member expires a board's news by itself): nothing to say.
      if (payload === undefined) continue;
      transport.publish(this.topics.mailbox(id), payload, true);
      if (mailbox && payload) mailbox.shared = true;
      this.published++;
    }
    for (const id of this.dirtyDevices) {
      this.dirtyDevices.delete(id);
      const record = this.broker.devices.get(id);
      if (!record) continue;
      const { online, lastSeen, remoteAddress } = record;
      const named = describeDevice(this.options.devices, id);
      const device: SharedDevice = { online, lastSeen, gateway: this.options.gateway, remoteAddress, ...named };
      transport.publish(this.topics.device(id), JSON.stringify(device), true);
      this.published++;
      const discovered = this.discovered.has(id) && this.discovered.get(id) === record.want;
      if (this.options.haDiscovery && !discovered) this.discover(record);
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

  private discover({ id, lastValue: value, want }: DeviceRecord): void {
    this.discovered.set(id, want);
    const numeric = typeof value === 'number' || isDecimal(value);
    const facts = { id, listed: this.options.devices?.get(id), numeric, reads: want };
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
      if (!this.transport) return;
      const { startedAt, counters } = announce;
      const state = { online: true, version: VERSION, startedAt, at: Date.now(), counters: counters?.() };
      this.transport.publish(this.topics.gateway(this.options.gateway), JSON.stringify(state), true);
      this.published++;
    };
    publish();
    if (this.options.haDiscovery) this.publishAll([gatewayDiscovery(this.discoveryContext())]);
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.announceTimer = setInterval(() => this.safely(publish), ANNOUNCE_EVERY_MS);
    this.announceTimer.unref?.();
  }

  private publishAll(messages: DiscoveryMessage[]): void {
    if (!this.transport) return;
    for (const { topic, payload } of messages) this.transport.publish(topic, payload, true);
    this.published += messages.length;
  }
}
