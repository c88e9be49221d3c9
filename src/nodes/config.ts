/** Reading node properties as the editor saves them (numbers may arrive as text). */

import { parseIdList } from '../protocol/ids';

/** A number property, or `fallback` when it is empty or not a number. */
export function numberProperty(value: unknown, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const number = Number(value);
  return Number.isFinite(number) ? number : fallback;
}

/**
 * A `device` filter property: empty matches every device, else a comma-separated
 * list of ids (compared as text, as the broker compares ids).
 */
export function deviceFilter(value: unknown): (id: string) => boolean {
  const wanted = parseIdList(value === undefined || value === null ? '' : String(value));
  return wanted ? (id) => wanted.has(id) : () => true;
}
