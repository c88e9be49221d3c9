/** Comma-separated lists of ids and addresses, as settings give them. */

import type { DeviceId } from './request';

/** The items of a comma-separated list, trimmed, without empty ones. */
export function listItems(text: string | undefined): string[] {
  return String(text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** A set of device ids, or undefined for an empty list (any id). */
export function parseIdList(text: string | undefined): Set<DeviceId> | undefined {
  const ids = listItems(text);
  return ids.length === 0 ? undefined : new Set(ids);
}
