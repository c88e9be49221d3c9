/**
 * Device registry: who has spoken, from where, and who has gone silent
 * (docs/PROTOCOL.md, online and offline). At most maxDevices records: the
 * one offline longest makes room for a new id; when every record is online,
 * new ids are not admitted. Every operation costs what changed, not how many
 * devices there ever were: the online devices are kept in the order they were
 * last heard (the sweep reads only those past their time), the offline ones in
 * the order they went offline (the first is the one to evict).
 */

import type { ConnectionInfo } from '../protocol/connection-info';
import type { DeviceId } from '../protocol/request';

export interface DeviceRecord {
  id: DeviceId;
  remoteAddress: string;
  remotePort: number;
  /** The connection the device last spoke on. */
  connectionId: number;
  /** Times in ms since the epoch. */
  firstSeen: number;
  lastSeen: number;
  /** Valid requests received from the device. */
  messages: number;
  online: boolean;
  /** The last payload the device sent: kept after it goes offline, for dashboards. */
  lastValue: unknown;
  /** The mailbox it last asked for: where a command to it goes (Home Assistant's command topic). */
  want?: DeviceId;
}

/** What changed since the last takeChanges(): the records to show again, and the ids gone. */
export interface DeviceChanges {
  changed: DeviceRecord[];
  removed: DeviceId[];
}

export class Devices {
  private readonly records = new Map<DeviceId, DeviceRecord>();
  /** Online records, least recently heard first (a request moves its device to the end). */
  private readonly onlineRecords = new Map<DeviceId, DeviceRecord>();
  /** Offline records, offline longest first. */
  private readonly offlineRecords = new Map<DeviceId, DeviceRecord>();
  /** Ids changed or removed since takeChanges(): bounded by maxDevices and what was evicted since. */
  private readonly changed = new Set<DeviceId>();
  private readonly removed = new Set<DeviceId>();
  private sweepTimer: NodeJS.Timeout | undefined;

  /**
   * @param offlineAfterMs silence after which a device is offline
   * @param onOffline called once for each device that goes offline
   * @param maxDevices how many records at most
   * @param onEvict called for each record dropped to make room
   */
  constructor(
    private offlineAfterMs: number,
    private readonly onOffline: (device: DeviceRecord) => void,
    private maxDevices = Infinity,
    private readonly onEvict?: (id: DeviceId) => void,
  ) {}

  /** A new offlineAfter: applies from the next sweep (restart sweeping for its new pace). */
  setOfflineAfter(offlineAfterMs: number): void {
    this.offlineAfterMs = offlineAfterMs;
  }

  /** A new cap: records beyond it are evicted at once, offline longest first (online ones stay). */
  setMaxDevices(maxDevices: number): void {
    this.maxDevices = maxDevices;
    while (this.records.size > maxDevices && this.evictOne());
  }

  /** Whether a request from `id` can be recorded: a known id, room, or an offline record to make room. */
  admits(id: DeviceId): boolean {
    return this.records.has(id) || this.records.size < this.maxDevices || this.offlineRecords.size > 0;
  }

  /** Records a valid request (check admits() first); returns the record if the device just came online. */
  heard(id: DeviceId, sender: ConnectionInfo, value: unknown, now: number, want?: DeviceId): DeviceRecord | undefined {
    let device = this.records.get(id);
    if (device === undefined) {
      if (this.records.size >= this.maxDevices) this.evictOne();
      device = {
        id,
        remoteAddress: sender.remoteAddress,
        remotePort: sender.remotePort,
        connectionId: sender.connectionId,
        firstSeen: now,
        lastSeen: now,
        messages: 0,
        online: false,
        lastValue: undefined,
      };
      this.records.set(id, device);
      this.removed.delete(id);
    }
    device.remoteAddress = sender.remoteAddress;
    device.remotePort = sender.remotePort;
    device.connectionId = sender.connectionId;
    device.lastSeen = now;
    device.messages++;
    device.lastValue = value;
    if (want !== undefined) device.want = want;
    this.changed.add(id);
    if (device.online) {
      // To the end of the online order: heard most recently.
      this.onlineRecords.delete(id);
      this.onlineRecords.set(id, device);
      return undefined;
    }
    device.online = true;
    this.offlineRecords.delete(id);
    this.onlineRecords.set(id, device);
    return device;
  }

  /** Marks offline every device silent for offlineAfter; returns how many went offline. */
  sweep(now: number): number {
    const deadline = now - this.offlineAfterMs;
    let wentOffline = 0;
    for (const device of this.onlineRecords.values()) {
      // The rest were heard later.
      if (device.lastSeen > deadline) break;
      this.onlineRecords.delete(device.id);
      device.online = false;
      this.offlineRecords.set(device.id, device);
      this.changed.add(device.id);
      wentOffline++;
      this.onOffline(device);
    }
    return wentOffline;
  }

  /** Marks device `id` offline now (its own gateway said so); returns the record if it was online. */
  wentOffline(id: DeviceId): DeviceRecord | undefined {
    const device = this.onlineRecords.get(id);
    if (!device) return undefined;
    this.onlineRecords.delete(id);
    device.online = false;
    this.offlineRecords.set(id, device);
    this.changed.add(id);
    return device;
  }

  /**
   * Sweeps on one timer for all devices (rather than one timer per device),
   * often enough that offline fires within offlineAfter + 0.5 s.
   */
  startSweeping(): void {
    if (this.sweepTimer) return;
    const every = Math.max(20, Math.min(500, this.offlineAfterMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), every);
  }

  stopSweeping(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * Takes back records saved before a restart: a device silent for less than
   * offlineAfter is still online (its offline message comes on time); the rest
   * are offline. Beyond maxDevices, the ones offline longest are dropped.
   */
  restore(records: DeviceRecord[], now: number): void {
    const devices = records.map((saved) => ({
      ...saved,
      online: saved.online && now - saved.lastSeen < this.offlineAfterMs,
    }));
    for (const device of devices) {
      this.forget(device.id);
      this.records.set(device.id, device);
      this.changed.add(device.id);
    }
    // The online and offline orders follow the times, whatever the snapshot's order.
    for (const device of [...devices].sort((a, b) => a.lastSeen - b.lastSeen))
      (device.online ? this.onlineRecords : this.offlineRecords).set(device.id, device);
    while (this.records.size > this.maxDevices && this.evictOne());
  }

  get(id: DeviceId): DeviceRecord | undefined {
    return this.records.get(id);
  }

  /** Every id in the table. */
  ids(): IterableIterator<DeviceId> {
    return this.records.keys();
  }

  /** Copies of every record, for the device table. */
  table(): DeviceRecord[] {
    return Array.from(this.records.values(), (device) => structuredClone(device));
  }

  /** Copies of the records changed, and the ids removed, since the last call. */
  takeChanges(): DeviceChanges {
    const changed: DeviceRecord[] = [];
    for (const id of this.changed) {
      const device = this.records.get(id);
      if (device) changed.push(structuredClone(device));
    }
    const removed = [...this.removed];
    this.changed.clear();
    this.removed.clear();
    return { changed, removed };
  }

  /** Forgets what changed since the last takeChanges(), copying nothing (no one is looking). */
  dropChanges(): void {
    this.changed.clear();
    this.removed.clear();
  }

  get online(): number {
    return this.onlineRecords.size;
  }

  get size(): number {
    return this.records.size;
  }

  /** Drops the record offline longest; false if every record is online. */
  private evictOne(): boolean {
    const oldest = this.offlineRecords.values().next();
    if (oldest.done) return false;
    this.forget(oldest.value.id);
    this.removed.add(oldest.value.id);
    this.onEvict?.(oldest.value.id);
    return true;
  }

  private forget(id: DeviceId): void {
    this.records.delete(id);
    this.onlineRecords.delete(id);
    this.offlineRecords.delete(id);
    this.changed.delete(id);
  }
}
