/**
 * Text a device sent, made safe for a log line or a status: quoted, control
 * characters escaped (a newline in an id must not start a forged log line),
 * and cut to a length a log line can carry; and whether bytes are text at all.
 */

import { isUtf8 } from 'node:buffer';

/** C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides, BOM: none may reach a log raw. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** `text` quoted and escaped as JSON would, those characters included, and at most `max` characters of it. */
export function printable(text: string, max = 64): string {
  const cut = text.length > max ? text.slice(0, max) : text;
  const quoted = JSON.stringify(cut).replace(
    UNPRINTABLE,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return text.length > max ? `${quoted}... (${text.length} characters)` : quoted;
}

/** The first bytes of `bytes`, printable, for a log line. */
export function preview(bytes: Buffer): string {
  const text = printable(bytes.subarray(0, 24).toString('latin1'));
  return bytes.length > 24 ? `${text}... (${bytes.length} bytes)` : text;
}

/** Text is UTF-8 with no NUL or other C0 control bytes except tab, CR, LF (and ESC for terminals). */
export function isText(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x1b) return false;
  }
  return isUtf8(bytes);
}
