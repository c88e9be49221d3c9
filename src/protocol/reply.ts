/** Mailbox content <-> the bytes of one reply, per dialect (docs/PROTOCOL.md, replies): the broker encodes, the client decodes. */

export type ReplyFormat = 'text' | 'json';

const EMPTY_REPLY: Record<ReplyFormat, Buffer> = {
  text: Buffer.from('None'),
  json: Buffer.from('null'),
};

/** The reply for an empty or expired mailbox: `None` (text) or `null` (json). */
export function emptyReply(format: ReplyFormat): Buffer {
  return EMPTY_REPLY[format];
}

/**
 * The reply for a mailbox holding `value`. A string goes out as its raw UTF-8
 * in the text dialect (an empty one as `None`) and quoted in the json one; any other value as its JSON
 * text. A Buffer written by a flow goes out as its bytes (text) or as a JSON
 * string of its UTF-8 text (json).
 */
export function encodeReply(value: unknown, format: ReplyFormat): Buffer {
  if (Buffer.isBuffer(value)) {
    if (format === 'json') return Buffer.from(JSON.stringify(value.toString('utf8')));
    return value.length === 0 ? EMPTY_REPLY.text : Buffer.from(value);
  }
  if (format === 'text' && typeof value === 'string') {
    // Zero bytes would be no reply at all and the device's recv() would time out.
    return value === '' ? EMPTY_REPLY.text : Buffer.from(value, 'utf8');
  }
  const json = JSON.stringify(value);
  // undefined, functions and symbols have no JSON text: the mailbox reads as empty.
  return json === undefined ? EMPTY_REPLY[format] : Buffer.from(json, 'utf8');
}

/** What a reply holds, read the way its dialect wrote it. */
export type DecodedReply =
  /** `None` (either dialect) or `null` (json): the mailbox is empty. */
  | { empty: true }
  /** text: the reply's UTF-8 text; json: its JSON value. */
  | { empty: false; value: unknown }
  /** json, but the bytes are not JSON: the text as it came. */
  | { empty: false; value: string; notJson: true };

/** The inverse of encodeReply(), as a device reads a reply. */
export function decodeReply(bytes: Buffer, format: ReplyFormat): DecodedReply {
  const text = bytes.toString('utf8');
  if (text === 'None') return { empty: true };
  if (format === 'text') return { empty: false, value: text };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { empty: false, value: text, notJson: true };
  }
  return value === null ? { empty: true } : { empty: false, value };
}
