/** A flow's writes as a broker takes them: checked here, with the message a Catch node gets when they fail. */

import type { NodeAPI } from 'node-red';
import type { ConnectionTarget, TcpmqBroker } from '../broker';
import { Fleet } from '../fleet/fleet';
import { canonicalId } from '../protocol/request';
import { numberProperty } from './config';
import type { ConnectionChoice } from './endpoint';

/**
 * Writes mailbox `target` (null or undefined `value`: clears it); throws naming what is wrong. Sharing,
 * the fleet decides: written here if this gateway owns the id, else sent to its owner.
 */
export function writeMailbox(
  RED: NodeAPI,
  writer: TcpmqBroker | Fleet,
  target: unknown,
  value: unknown,
  ttl: number,
): void {
  if (target === undefined || target === null || target === '') throw new Error(RED._('tcpmq-broker.errors.no-target'));
  if (!(ttl >= 0)) throw new Error(RED._('tcpmq-broker.errors.bad-ttl', { ttl: String(ttl) }));
  if (writer instanceof Fleet) writer.write(target, value, ttl);
  else if (value === undefined || value === null) writer.clearMailbox(target);
  else writer.writeMailbox(target, value, ttl);
}

/** The connections a message chose: msg.connectionId, else the device's. */
export function connectionTarget(RED: NodeAPI, { connectionId, device }: ConnectionChoice): ConnectionTarget {
  const number = numberProperty(connectionId, NaN);
  if (Number.isInteger(number)) return { connectionId: number };
  const id = canonicalId(device);
  if (id === undefined || id === '') throw new Error(RED._('tcpmq-broker.errors.no-connection'));
  return { device: id };
}
