/**
 * Text a device sent, made safe for a log line or a status: quoted, control
 * characters escaped (a newline in an id must not start a forged log line),
 * and cut to a length a log line can carry.
 */

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
