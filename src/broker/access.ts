/** Who may talk to the broker: address ranges and device ids (comma-separated lists in the config). */

import { BlockList, isIP } from 'node:net';
import type { DeviceId } from '../protocol/request';

/** The items of a comma-separated list, trimmed, without empty ones. */
export function listItems(text: string | undefined): string[] {
  return String(text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
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
export function isAllowedAddress(allowed: BlockList, address: string): boolean {
  const family = isIP(address);
  if (family === 4) return allowed.check(address, 'ipv4');
  if (family === 6) return allowed.check(address, 'ipv6');
  return false;
}

/** A set of device ids, or undefined for an empty list (any id). */
export function parseIdList(text: string | undefined): Set<DeviceId> | undefined {
  const ids = listItems(text);
  return ids.length === 0 ? undefined : new Set(ids);
}
