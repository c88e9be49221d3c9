/** Device registry: who has spoken, from where, and who has gone silent (docs/PROTOCOL.md, online and offline). */

import type { ConnectionInfo } from './connection';
import type { DeviceId } from './request';

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
}

export class Devices {
  private readonly records = new Map<DeviceId, DeviceRecord>();
  private onlineCount = 0;
  private sweepTimer: NodeJS.Timeout | undefined;

  /**
   * @param offlineAfterMs silence after which a device is offline
   * @param onOffline called once for each device that goes offline
   */
  constructor(
    private offlineAfterMs: number,
    private readonly onOffline: (device: DeviceRecord) => void,
  ) {}

  /** A new offlineAfter: applies from the next sweep (restart sweeping for its new pace). */
  setOfflineAfter(offlineAfterMs: number): void {
    this.offlineAfterMs = offlineAfterMs;
  }

  /** Records a valid request; returns the record if the device just came online. */
  heard(id: DeviceId, sender: ConnectionInfo, value: unknown, now: number): DeviceRecord | undefined {
    let device = this.records.get(id);
    if (device === undefined) {
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
    }
    device.remoteAddress = sender.remoteAddress;
    device.remotePort = sender.remotePort;
    device.connectionId = sender.connectionId;
    device.lastSeen = now;
    device.messages++;
    device.lastValue = value;
    if (device.online) return undefined;
    device.online = true;
    this.onlineCount++;
    return device;
  }

  /** Marks offline every device silent for offlineAfter; returns how many went offline. */
  sweep(now: number): number {
    if (this.onlineCount === 0) return 0;
    const deadline = now - this.offlineAfterMs;
    let wentOffline = 0;
    for (const device of this.records.values()) {
      if (device.online && device.lastSeen <= deadline) {
        device.online = false;
        this.onlineCount--;
        wentOffline++;
        this.onOffline(device);
      }
    }
    return wentOffline;
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
   * are offline.
   */
  restore(records: DeviceRecord[], now: number): void {
    for (const saved of records) {
      const device = { ...saved, online: saved.online && now - saved.lastSeen < this.offlineAfterMs };
      const previous = this.records.get(device.id);
      if (previous?.online) this.onlineCount--;
      if (device.online) this.onlineCount++;
      this.records.set(device.id, device);
    }
  }

  get(id: DeviceId): DeviceRecord | undefined {
    return this.records.get(id);
  }

  /** Copies of every record, for the device table. */
  table(): DeviceRecord[] {
    return Array.from(this.records.values(), (device) => structuredClone(device));
  }

  get online(): number {
    return this.onlineCount;
  }

  get size(): number {
    return this.records.size;
  }
}
