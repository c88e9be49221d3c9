/**
 * What `persist` saves and takes back after a restart: mailboxes and device
 * records as plain JSON (a context store may keep nothing else).
 */

import type { DeviceRecord, Devices } from './devices';
import { copyOf, type Mailboxes } from './mailboxes';
import type { DeviceId } from '../protocol/request';

export interface BrokerSnapshot {
  version: 1;
  /** `buffer`: the value is a Buffer, saved as base64 (a JSON store would turn it into an object). */
  mailboxes: {
    id: DeviceId;
    value: unknown;
    buffer?: boolean;
    writtenAt: number;
    writer: 'device' | 'flow';
    expiresAt: number | null;
  }[];
  devices: DeviceRecord[];
}

/** The mailboxes that have not expired and every device record, at `now`. */
export function takeSnapshot(mailboxes: Mailboxes, devices: Devices, now: number): BrokerSnapshot {
  const saved: BrokerSnapshot['mailboxes'] = [];
  for (const [id, mailbox] of mailboxes.entries()) {
    // Expired, or another gateway's (the fleet brings those back itself).
    if (mailbox.expiresAt <= now || mailbox.gateway !== undefined) continue;
    const { value, writtenAt, writer, expiresAt } = mailbox;
    const expires = Number.isFinite(expiresAt) ? expiresAt : null;
    if (Buffer.isBuffer(value))
      saved.push({ id, value: value.toString('base64'), buffer: true, writtenAt, writer, expiresAt: expires });
    else saved.push({ id, value: copyOf(value), writtenAt, writer, expiresAt: expires });
  }
  return { version: 1, mailboxes: saved, devices: devices.table() };
}

/**
 * Takes back a snapshot: flow-written mailboxes until their time to live,
 * a device's own news only while the device still counts as online. A
 * mailbox written since the broker started is newer: it is kept.
 */
export function restoreSnapshot(snapshot: BrokerSnapshot, mailboxes: Mailboxes, devices: Devices, now: number): void {
  if (snapshot?.version !== 1) return;
  devices.restore(snapshot.devices ?? [], now);
  for (const { id, value, buffer, writtenAt, writer, expiresAt } of snapshot.mailboxes ?? []) {
    const ttl = expiresAt === null ? 0 : expiresAt - now;
    if (expiresAt !== null && ttl <= 0) continue;
    if (writer === 'device' && !devices.get(id)?.online) continue;
    if (mailboxes.read(id, now)) continue;
    const mailbox = mailboxes.write(id, buffer ? Buffer.from(String(value), 'base64') : value, writer, now, ttl);
    mailbox.writtenAt = writtenAt;
  }
}
