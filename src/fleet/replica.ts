/**
 * The fleet's incoming side: every other gateway's mailboxes written into this
 * broker's store (last writer wins), their devices in a table of their own
 * (online while their news is fresh, offline at once when their gateway says
 * it is gone), their names, and what any MQTT client asks of this gateway
 * (`/set`, send, close). What it takes in is never published again.
 */

import type { RawEvent, TcpmqBroker } from '../broker/broker';
import { printable } from '../protocol/printable';
import type { DeviceId } from '../protocol/request';
import { Devices, type DeviceRecord } from '../store/devices';
import { mailboxValue } from '../store/mailbox-codec';
import type { FleetOptions } from './fleet';
import {
  type SharedCommand,
  type SharedDevice,
  type SharedGateway,
  type SharedMailbox,
  type SharedRaw,
} from './topics';

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
  /** The gateway of each id known from the fleet. */
  private readonly owners = new Map<DeviceId, string>();
  /** Names and units other gateways give their boards (their device topics). */
  private readonly remoteNames = new Map<DeviceId, { name?: string; unit?: string }>();
  /** Messages taken in, for the benchmark and the sidebar. */
  received = 0;

  constructor(
    private readonly broker: TcpmqBroker,
    private readonly options: FleetOptions,
    private readonly emit: <E extends keyof ReplicaEvents>(event: E, arg: ReplicaEvents[E]) => void,
  ) {
    const { offlineAfter, maxDevices } = broker.options;
    this.remote = new Devices(offlineAfter * 1000, (device) => this.wentOffline(device), maxDevices);
  }

  /** The gateway id `id` lives on, if it is another's. */
  gatewayOf(id: DeviceId): string | undefined {
    return this.owners.get(id);
  }

  /** A mailbox written here: no longer another gateway's. */
  forget(id: DeviceId): void {
    this.owners.delete(id);
  }

  nameOf(id: DeviceId): { name?: string; unit?: string } {
    return this.remoteNames.get(id) ?? {};
  }

  /** `<prefix>/mailbox/<id>`: another gateway's mailbox, or this one's flow write from before a restart. */
  mailbox(id: DeviceId, payload: Buffer): void {
    this.received++;
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
    if (typeof shared.gateway !== 'string') throw new Error(`mailbox message without a gateway for ${printable(id)}`);
    const writer = shared.writer === 'flow' ? 'flow' : 'device';
    // This gateway's own, retained: only what a flow wrote is taken back (after a restart it holds nothing).
    if (shared.gateway === this.options.gateway && (writer === 'device' || current)) return;
    // Last writer wins; the gateway name breaks a tie between gateways. One gateway's messages come in the
    // order it wrote them (two reports may share a millisecond): the later one wins.
    if (current && current.writtenAt > shared.writtenAt) return;
    if (current && current.writtenAt === shared.writtenAt && current.gateway !== shared.gateway) {
      if ((current.gateway ?? this.options.gateway) >= shared.gateway) return;
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
    this.owners.set(id, shared.gateway);
    if (writer === 'device') this.news(id, value, shared);
  }

  /** `<prefix>/mailbox/<id>/set`: any MQTT client writes a mailbox, as a flow would (every gateway writes it). */
  set(id: DeviceId, payload: Buffer): void {
    this.received++;
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

  /** `<prefix>/device/<id>`: another gateway's device came or went; its name. */
  device(id: DeviceId, payload: Buffer): void {
    if (payload.length === 0) return;
    this.received++;
    const shared = JSON.parse(payload.toString('utf8')) as SharedDevice;
    if (typeof shared !== 'object' || shared === null || shared.gateway === this.options.gateway) return;
    this.owners.set(id, String(shared.gateway));
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
    if (payload.length === 0 || gateway === this.options.gateway) return;
    const state = JSON.parse(payload.toString('utf8')) as SharedGateway;
    if (state?.online !== false) return;
    for (const [id, owner] of this.owners) {
      if (owner !== gateway) continue;
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

  private news(id: DeviceId, value: unknown, shared: SharedMailbox): void {
    // The broker's settings may have changed since (a deploy): the remote devices follow them.
    this.remote.setOfflineAfter(this.broker.options.offlineAfter * 1000);
    this.remote.setMaxDevices(this.broker.options.maxDevices);
    const { want, connectionId, remoteAddress, remotePort, gateway } = shared;
    const sender = { remoteAddress: remoteAddress ?? '', remotePort: remotePort ?? 0, connectionId: connectionId ?? 0 };
    const cameOnline = this.remote.heard(id, sender, value, shared.writtenAt);
    if (cameOnline) this.emit('online', this.record(cameOnline));
    this.emit('news', { from: id, payload: value, gateway, want, connectionId, remoteAddress, remotePort });
  }

  private wentOffline(device: DeviceRecord): void {
    const mailbox = this.broker.mailboxes.read(device.id, Date.now());
    if (mailbox?.gateway !== undefined && mailbox.writer === 'device') this.broker.mailboxes.clear(device.id);
    this.emit('offline', this.record(device));
  }

  private record(device: DeviceRecord): RemoteDevice {
    return { ...structuredClone(device), gateway: this.owners.get(device.id) ?? this.options.gateway };
  }
}
