/**
 * A mailbox as JSON, for what leaves the process (persist's snapshot, the
 * fleet's MQTT messages): a Buffer as base64 with `buffer: true` (JSON would
 * turn it into an object), "never expires" as `expiresAt: null`.
 */

import { copyOf, type Mailbox, type Writer } from './mailboxes';

export interface MailboxJson {
  value: unknown;
  /** The value is a Buffer, as base64. */
  buffer?: true;
  writtenAt: number;
  writer: Writer;
  /** When it stops being served (ms since epoch), or null for never. */
  expiresAt: number | null;
}

export function mailboxJson({ value, writtenAt, writer, expiresAt }: Mailbox): MailboxJson {
  const expires = Number.isFinite(expiresAt) ? expiresAt : null;
  if (Buffer.isBuffer(value))
    return { value: value.toString('base64'), buffer: true, writtenAt, writer, expiresAt: expires };
  return { value: copyOf(value), writtenAt, writer, expiresAt: expires };
}

/** The value a MailboxJson holds. */
export function mailboxValue({ value, buffer }: { value: unknown; buffer?: boolean }): unknown {
  return buffer ? Buffer.from(String(value), 'base64') : value;
}
