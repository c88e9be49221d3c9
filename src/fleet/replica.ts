/**
 * The fleet's incoming side: every other gateway's mailboxes written into this
 * broker's store when they come after what it holds (the write order, topics.ts),
 * their devices in a table of their own (online while their news is fresh,
 * offline at once when their gateway says it is gone), their names, and what
 * any MQTT client asks of this gateway (`/set` for the ids it owns, send,
 * close). What MQTT brings is held to the TCP side's limits: id length, reply
 * size, table size. What it takes in is never published again.
 */

import type { RawEvent, TcpmqBroker } from '../broker';
import { printable } from '../protocol/printable';
import { encodeReply } from '../protocol/reply';
import { MAX_ID_BYTES, idTooLong, type DeviceId } from '../protocol/request';
import { Devices, type DeviceRecord } from '../store/devices';
import { mailboxValue } from '../store/mailbox-codec';
import type { Mailbox } from '../store/mailboxes';
import type { FleetOptions } from './options';
import type { Ownership } from './ownership';
import {
  isLater,
  type SharedCommand,
  type SharedDevice,
  type SharedGateway,
  type SharedMailbox,
  type SharedRaw,
} from './topics';

/** A device of another gateway, as events carry it. */
interface RemoteDevice extends DeviceRecord {
  gateway: string;
}

/** A remote device's news, with what its gateway said of the request. */
interface RemoteNews {
  from: DeviceId;
  payload: unknown;
  gateway: string;
  want?: DeviceId;
  connectionId?: number;
  remoteAddress?: string;
  remotePort?: number;
}

/** What the replica reports (the Fleet emits them as its events). */
export interface ReplicaEvents {
  news: RemoteNews;
  raw: RawEvent & { gateway: string };
  online: RemoteDevice;
  offline: RemoteDevice;
}

export class Replica {
  /** The devices of other gateways: online while their news is fresh. */
  readonly remote: Devices;
  /** The other gateway each id known from the fleet lives on (not the owner of its topic: ownership.ts). */
  private readonly remoteGateways = new Map<DeviceId, string>();
  /** Names and units other gateways give their boards (their device topics). */
  private readonly remoteNames = new Map<DeviceId, { name?: string; unit?: string }>();
  /**
   * While (re)connecting, until every retained message has come (fleet.ts): this gateway's own retained
   * writes, by id, so that it publishes only what is newer. Undefined once in step.
   */
  retainedOwn: Map<DeviceId, number> | undefined;
  /** While (re)connecting: the MQTT broker still holds this gateway's own state, so it kept what is retained. */
  ownStateRetained = false;
  /** Messages taken in, for the benchmark and the sidebar. */
  received = 0;

  constructor(
    private readonly broker: TcpmqBroker,
    private readonly options: FleetOptions,
    private readonly ownership: Ownership,
    private readonly emit: <E extends keyof ReplicaEvents>(event: E, arg: ReplicaEvents[E]) => void,
    /** A refusal of what MQTT brought, rate-limited by the fleet. */
    private readonly refused: (topic: string, reason: string) => void,
  ) {
    const { offlineAfter, maxDevices } = broker.options;
    this.remote = new Devices(
      offlineAfter * 1000,
      (device) => this.wentOffline(device),
      maxDevices,
      (id) => this.remoteNames.delete(id),
    );
  }

  /** The gateway id `id` lives on, if it is another's. */
  remoteGateway(id: DeviceId): string | undefined {
    return this.remoteGateways.get(id);
  }

  /** A mailbox written here: no longer another gateway's. */
  forget(id: DeviceId): void {
    this.remoteGateways.delete(id);
  }

  /** The name and unit its own gateway gives board `id`. */
  describeDevice(id: DeviceId): { name?: string; unit?: string } {
    return this.remoteNames.get(id) ?? {};
  }

  /**
   * `<prefix>/mailbox/<id>`: another gateway's write, taken in if it comes after what is held; this
   * gateway's own only while (re)connecting (after a restart, a newer one than persist kept). `retained`:
   * a value held by the MQTT broker from before, not news: it reaches no flow.
   */
  mailbox(topic: string, id: DeviceId, payload: Buffer, retained = false): void {
    this.received++;
    const now = Date.now();
    const current = this.broker.mailboxes.read(id, now);
    if (payload.length === 0) {
      // Emptied by its owner (docs/PROTOCOL.md, sharing); this gateway's own stays until it writes it.
      if (current?.gateway !== undefined) this.broker.mailboxes.clear(id);
      this.remoteGateways.delete(id);
      return;
    }
    const shared = JSON.parse(payload.toString('utf8')) as SharedMailbox;
    if (typeof shared !== 'object' || shared === null || typeof shared.writtenAt !== 'number') {
      throw new Error(`not a mailbox message: ${printable(payload.toString('utf8'))}`);
    }
    if (typeof shared.gateway !== 'string') throw new Error(`mailbox message without a gateway for ${printable(id)}`);
    const own = shared.gateway === this.options.gateway && !this.options.attached;
    if (own) {
      // Its own echo, once in step; while (re)connecting, what the MQTT broker kept of it.
      if (!this.retainedOwn) return;
      this.retainedOwn.set(id, shared.writtenAt);
    }
    if (current && !isLater(shared, { writtenAt: current.writtenAt, gateway: current.gateway ?? this.options.gateway }))
      return;
    const writer = shared.writer === 'flow' ? 'flow' : 'device';
    const expiresAt =
      writer === 'device' ? shared.writtenAt + this.broker.options.offlineAfter * 1000 : shared.expiresAt;
    if (expiresAt !== null && expiresAt <= now) {
      // A later write that has expired: what was held before it is no longer the latest either.
      if (current) this.broker.mailboxes.clear(id);
      this.remoteGateways.delete(id);
      return;
    }
    const value = mailboxValue(shared);
    const reply = this.admit(topic, id, value, current);
    if (!reply) return;
    const ttl = expiresAt === null ? 0 : expiresAt - shared.writtenAt;
    const gateway = own ? undefined : shared.gateway;
    this.broker.mailboxes.write(id, value, writer, shared.writtenAt, ttl, reply, gateway);
    if (own) return;
    this.remoteGateways.set(id, shared.gateway);
    if (writer === 'device') this.news(id, value, shared, retained);
  }

  /**
   * `<prefix>/mailbox/<id>/set[/<ttl>]`: any MQTT client writes a mailbox, as a flow would. Only the id's
   * owner takes it; the others take its result in from the owner's mailbox message.
   */
  set(topic: string, id: DeviceId, payload: Buffer, ttlSeconds: number): void {
    this.received++;
    if (!this.ownership.owns(id)) return;
    const text = payload.toString('utf8');
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // Not JSON: the text itself.
    }
    if (value === null || text === '') {
      this.broker.clearMailbox(id);
      return;
    }
    if (!this.admit(topic, id, value, this.broker.mailboxes.read(id, Date.now()))) return;
    this.broker.writeMailbox(id, value, ttlSeconds > 0 ? ttlSeconds : 0);
  }

  /**
   * The TCP side's limits on what MQTT brings: the id's length, the reply's size, and a full table for a
   * new id. Returns the value's reply, or undefined (refused, with a warning naming the topic and why).
   */
  private admit(topic: string, id: DeviceId, value: unknown, current: Mailbox | undefined): Buffer | undefined {
    const { replyFormat, maxFrameBytes, maxDevices } = this.broker.options;
    let reason: string | undefined;
    let reply: Buffer | undefined;
    if (idTooLong(id)) reason = `the id is over ${MAX_ID_BYTES} bytes`;
    else if (!current && this.broker.mailboxes.size >= maxDevices)
      reason = `${maxDevices} mailboxes held (maxDevices): no room for a new id`;
    else {
      reply = encodeReply(value, replyFormat);
      if (reply.length > maxFrameBytes)
        reason = `its reply of ${reply.length} bytes is over maxFrameBytes (${maxFrameBytes})`;
    }
    if (reason === undefined) return reply;
    this.refused(topic, reason);
    return undefined;
  }

  /** `<prefix>/device/<id>`: another gateway's device came or went; its name. */
  device(id: DeviceId, payload: Buffer): void {
    if (payload.length === 0) return;
    this.received++;
    const shared = JSON.parse(payload.toString('utf8')) as SharedDevice;
    if (typeof shared !== 'object' || shared === null || shared.gateway === this.options.gateway) return;
    // Known ids only once the tables are full: retained topics are anyone's to publish.
    if (!this.remoteGateways.has(id) && this.remoteGateways.size >= 2 * this.broker.options.maxDevices) return;
    this.remoteGateways.set(id, String(shared.gateway));
    const { name, unit } = shared;
    if (typeof name === 'string' || typeof unit === 'string') {
      this.remoteNames.set(id, { ...(name ? { name: String(name) } : {}), ...(unit ? { unit: String(unit) } : {}) });
    } else this.remoteNames.delete(id);
    const record = this.remote.get(id);
    if (!shared.online) {
      const wentOffline = this.remote.wentOffline(id);
      if (wentOffline) this.wentOffline(wentOffline);
    } else if (record) record.remoteAddress = String(shared.remoteAddress ?? '');
  }

  /** `<prefix>/gateway/<name>`: when a gateway says it is offline (its will), its devices are offline here at once. */
  gateway(gateway: string, payload: Buffer): void {
    if (payload.length === 0) return;
    if (gateway === this.options.gateway) {
      // Before this gateway says anything, its state can only be the MQTT broker's retained one (its last run's).
      if (this.retainedOwn) this.ownStateRetained = true;
      return;
    }
    const state = JSON.parse(payload.toString('utf8')) as SharedGateway;
    this.ownership.gatewayState(gateway, state?.online === true && state.attached !== true, state?.at);
    if (state?.online !== false) return;
    for (const [id, home] of this.remoteGateways) {
      if (home !== gateway) continue;
      const wentOffline = this.remote.wentOffline(id);
      if (wentOffline) this.wentOffline(wentOffline);
    }
  }

  /** `<prefix>/raw/<gateway>`: a plain-text line on another gateway. */
  raw(payload: Buffer): void {
    const raw = JSON.parse(payload.toString('utf8')) as SharedRaw;
    if (typeof raw !== 'object' || raw === null || typeof raw.data !== 'string') return;
    if (raw.gateway === this.options.gateway) return;
    this.received++;
    const bytes = raw.buffer ? Buffer.from(raw.data, 'base64') : Buffer.from(raw.data, 'utf8');
    const where = { connectionId: Number(raw.connectionId) || 0, remotePort: Number(raw.remotePort) || 0 };
    const remoteAddress = String(raw.remoteAddress ?? '');
    this.emit('raw', { ...where, remoteAddress, bytes, isText: !raw.buffer, gateway: String(raw.gateway) });
  }

  /** `<prefix>/gateway/<this one>/send` or `/close`: a flow elsewhere writes to or closes connections here. */
  command(command: 'send' | 'close', payload: Buffer): void {
    this.received++;
    const { connectionId, device, data, buffer } = JSON.parse(payload.toString('utf8')) as SharedCommand;
    const target = typeof connectionId === 'number' ? { connectionId } : { device: String(device ?? '') };
    if (command === 'close') this.broker.closeConnections(target);
    else this.broker.send(target, buffer ? Buffer.from(String(data), 'base64') : String(data ?? ''));
  }

  private news(id: DeviceId, value: unknown, shared: SharedMailbox, retained: boolean): void {
    // The broker's settings may have changed since (a deploy): the remote devices follow them.
    this.remote.setOfflineAfter(this.broker.options.offlineAfter * 1000);
    this.remote.setMaxDevices(this.broker.options.maxDevices);
    const { want, connectionId, remoteAddress, remotePort, gateway, writtenAt } = shared;
    // Each report reaches a flow once and in order, whatever a restarted gateway publishes again.
    const known = this.remote.get(id);
    if (known && known.lastSeen >= writtenAt) return;
    if (!known && !this.remote.admits(id)) return;
    const sender = { remoteAddress: remoteAddress ?? '', remotePort: remotePort ?? 0, connectionId: connectionId ?? 0 };
    const cameOnline = this.remote.heard(id, sender, value, writtenAt, want);
    if (cameOnline) this.emit('online', this.record(cameOnline));
    if (!retained)
      this.emit('news', { from: id, payload: value, gateway, want, connectionId, remoteAddress, remotePort });
  }

  private wentOffline(device: DeviceRecord): void {
    const mailbox = this.broker.mailboxes.read(device.id, Date.now());
    if (mailbox?.gateway !== undefined && mailbox.writer === 'device') this.broker.mailboxes.clear(device.id);
    this.emit('offline', this.record(device));
  }

  private record(device: DeviceRecord): RemoteDevice {
    return { ...structuredClone(device), gateway: this.remoteGateways.get(device.id) ?? this.options.gateway };
  }
}
