/**
 * What `persist` saves and takes back after a restart: mailboxes and device
 * records as plain JSON (a context store may keep nothing else).
 */

import type { DeviceRecord, Devices } from './devices';
import { mailboxJson, mailboxValue, type MailboxJson } from './mailbox-codec';
import type { Mailboxes } from './mailboxes';
import type { DeviceId } from '../protocol/request';

export interface BrokerSnapshot {
  version: 1;
  /** `buffer`: the value is a Buffer, saved as base64 (a JSON store would turn it into an object). */
  /** `shared`: this gateway had published it on MQTT (a restart that finds it gone there takes it as cleared). */
  mailboxes: (MailboxJson & { id: DeviceId; shared?: true })[];
  devices: DeviceRecord[];
}

/** The mailboxes that have not expired and every device record, at `now`. */
export function takeSnapshot(mailboxes: Mailboxes, devices: Devices, now: number): BrokerSnapshot {
  const saved: BrokerSnapshot['mailboxes'] = [];
  for (const [id, mailbox] of mailboxes.entries()) {
    // Expired, or another gateway's (the fleet brings those back itself).
    if (mailbox.expiresAt <= now || mailbox.gateway !== undefined) continue;
    saved.push({ id, ...mailboxJson(mailbox), ...(mailbox.shared ? { shared: true as const } : {}) });
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
  for (const saved of snapshot.mailboxes ?? []) {
    const { id, writtenAt, writer, expiresAt } = saved;
    if (expiresAt !== null && expiresAt <= now) continue;
    if (writer === 'device' && !devices.get(id)?.online) continue;
    if (mailboxes.read(id, now)) continue;
    const ttl = expiresAt === null ? 0 : expiresAt - writtenAt;
    const restored = mailboxes.write(id, mailboxValue(saved), writer, writtenAt, ttl);
    if (saved.shared === true) restored.shared = true;
  }
}
