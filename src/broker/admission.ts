/**
 * Who the broker admits, as one policy: addresses (allowFrom) and the
 * connection limit at connect, device ids (allowDevices) at each request, and
 * both again for open connections when the settings change. A check added here
 * applies wherever the broker admits.
 */

import { BlockList, isIP } from 'node:net';
import { listItems, parseIdList } from '../protocol/ids';
import { printable } from '../protocol/printable';
import type { DeviceId } from '../protocol/request';
import { errorText } from '../events/safe-emitter';
import type { RejectKind } from './events';

interface AdmissionSettings {
  /** Comma-separated addresses and CIDR ranges allowed to connect; empty = anyone. */
  allowFrom: string;
  /** Comma-separated device ids allowed to send; empty = any. */
  allowDevices: string;
  maxConnections: number;
}

/** Why something is refused, as a 'rejected' event says it. */
interface Refusal {
  kind: RejectKind;
  reason: string;
}

export class Admission {
  private addresses: BlockList | undefined;
  private devices: Set<DeviceId> | undefined;
  private maxConnections = Infinity;
  /** A setting that cannot work (a bad allowFrom entry): the broker reports it instead of listening. */
  configError: string | undefined;

  constructor(settings: AdmissionSettings) {
    this.configure(settings);
  }

  configure({ allowFrom, allowDevices, maxConnections }: AdmissionSettings): void {
    this.configError = undefined;
    try {
      this.addresses = parseAllowFrom(allowFrom);
    } catch (err) {
      this.addresses = undefined;
      this.configError = errorText(err);
    }
    this.devices = parseIdList(allowDevices);
    this.maxConnections = maxConnections;
  }

  /** A new connection from `address`, with `open` connections already: refused before any byte is read? */
  refuseConnection(address: string, open: number): Refusal | undefined {
    if (!this.admitsAddress(address)) return { kind: 'forbidden', reason: 'address not in allowFrom' };
    if (open >= this.maxConnections) {
      return { kind: 'refused', reason: `connection limit of ${this.maxConnections} reached` };
    }
    return undefined;
  }

  /** A request from device `id`: refused before it touches a mailbox? */
  refuseDevice(id: DeviceId): Refusal | undefined {
    if (this.devices && !this.devices.has(id)) {
      return { kind: 'unknown-device', reason: `device id ${printable(id)} not in allowDevices` };
    }
    return undefined;
  }

  /** An open connection, after a settings change: does it still pass? */
  refuseOpen(address: string, deviceId: DeviceId | undefined): Refusal | undefined {
    if (!this.admitsAddress(address)) return { kind: 'forbidden', reason: 'address no longer in allowFrom' };
    if (this.devices && deviceId !== undefined && !this.devices.has(deviceId)) {
      return { kind: 'unknown-device', reason: `device id ${printable(deviceId)} no longer in allowDevices` };
    }
    return undefined;
  }

  private admitsAddress(address: string): boolean {
    return !this.addresses || isAllowedAddress(this.addresses, address);
  }
}

/**
 * Addresses and CIDR ranges, IPv4 and IPv6: "192.168.4.0/24, 10.0.0.5, fd00::/8".
 * Returns undefined for an empty list (anyone may connect); throws naming the bad entry.
 */
export function parseAllowFrom(text: string | undefined): BlockList | undefined {
  const entries = listItems(text);
  if (entries.length === 0) return undefined;
  const allowed = new BlockList();
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? undefined : Number(prefix);
    const maxBits = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      extra !== undefined ||
      (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= maxBits))
    ) {
      throw new Error(`allowFrom: "${entry}" is not an IP address or CIDR range`);
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) allowed.addAddress(address, type);
    else allowed.addSubnet(address, bits, type);
  }
  return allowed;
}

/** Whether `address` (as Node reports it, IPv4 possibly mapped into IPv6) is in `allowed`. */
function isAllowedAddress(allowed: BlockList, address: string): boolean {
  const family = isIP(address);
  if (family === 4) return allowed.check(address, 'ipv4');
  if (family === 6) return allowed.check(address, 'ipv6');
  return false;
}
