/** A frame's meaning: `[from, want, payload]` (docs/PROTOCOL.md, frames and ids). */

/** A device id in its canonical text: `1` and `"1"` are both "1". */
export type DeviceId = string;

export interface Request {
  from: DeviceId;
  want: DeviceId;
  payload: unknown;
}

/** A frame that is not a request, and why (docs/PROTOCOL.md, what is not a request). */
export interface NotARequest {
  reason: string;
}

/**
 * The canonical text of an id: a number by its JSON text, a string as itself.
 * Frames keep every digit an integer was sent with (see parseRequest), which a
 * number may not. Returns undefined for anything else (objects, booleans,
 * null, Infinity).
 */
export function canonicalId(value: unknown): DeviceId | undefined {
  if (typeof value === 'string') return value;
  // String() of a finite number is its JSON text (1, -1, 2.5, 1e+21), and cheaper.
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * The canonical id of a number as it was written in a frame: an integer keeps
 * every digit (`12345678901234567891`, which a double would round); any other
 * spelling (`1.0`, `1e0`, `2.5`) is the id of its value.
 */
function canonicalNumberText(text: string | undefined): DeviceId | undefined {
  if (text === undefined) return undefined;
  if (INTEGER_TEXT.test(text) && text !== '-0') return text;
  return canonicalId(Number(text));
}

/** An integer in its canonical JSON spelling (no leading zero). */
const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;

/**
 * The id as JSON text on the wire from a device (the inverse of canonicalId):
 * an integer's digits, or the JSON text of a number when the id is exactly
 * that (`1`, `-1`, `2.5`), are sent as a number; any other id (`01`, `1.0`,
 * `+1`, `cmd`) as a string. Field brokers key mailboxes by the JSON value, so
 * `1` and `"1"` are different mailboxes there (docs/PROTOCOL.md, client mode).
 */
export function wireIdJson(id: string): string {
  if (id === '') return '""';
  if (INTEGER_TEXT.test(id) && id !== '-0') return id;
  const value = Number(id);
  return Number.isFinite(value) && JSON.stringify(value) === id ? id : JSON.stringify(id);
}

/** The id as a JSON value on the wire (see wireIdJson; an integer beyond a double's precision stays text here). */
export function wireId(id: string): number | string {
  const json = wireIdJson(id);
  const value = json.startsWith('"') ? id : Number(json);
  return typeof value === 'number' && JSON.stringify(value) !== json ? id : value;
}

/**
 * Deeper payloads are refused: devices send flat values, and copying or
 * encoding a value nested thousands deep would exhaust the stack.
 */
export const MAX_PAYLOAD_DEPTH = 32;

/** Whether `value` nests arrays and objects deeper than `max` (walked without recursion). */
function nestsDeeperThan(value: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(item))
      if (typeof child === 'object' && child !== null) pending.push([child, depth + 1]);
  }
  return false;
}

/** Ids are short names (a chip id, `kitchen`): a longer one makes the frame a protocol error. */
export const MAX_ID_BYTES = 128;

export function parseRequest(frame: Buffer): Request | NotARequest {
  const common = parseCommonFrame(frame);
  return common ? checkIds(common) : parseAnyFrame(frame);
}

/** The request, or why its ids are refused. */
function checkIds(request: Request): Request | NotARequest {
  return idTooLong(request.from) || idTooLong(request.want)
    ? { reason: `device ids are at most ${MAX_ID_BYTES} bytes` }
    : request;
}

/** Whether `id` is over MAX_ID_BYTES: the TCP side refuses it, and so does the MQTT side (sharing). */
export function idTooLong(id: DeviceId): boolean {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short ids need no count.
  return id.length * 3 > MAX_ID_BYTES && Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES;
}

/** Any JSON frame, through JSON.parse: the reference for parseCommonFrame. */
export function parseAnyFrame(frame: Buffer): Request | NotARequest {
  let value: unknown;
  try {
    value = JSON.parse(frame.toString('utf8'));
  } catch {
    return { reason: 'invalid JSON' };
  }
  if (!Array.isArray(value) || value.length !== 3) {
    return { reason: 'not a three-element array [from, want, payload]' };
  }
  let from = canonicalId(value[0]);
  let want = canonicalId(value[1]);
  if (from === undefined || want === undefined) {
    return { reason: 'device ids must be numbers or strings' };
  }
  // A double keeps 15 to 17 digits: an id beyond them is read again from its text.
  if (isLargeNumber(value[0]) || isLargeNumber(value[1])) {
    const texts = idTexts(frame.toString('utf8'));
    if (texts && isLargeNumber(value[0])) from = canonicalNumberText(texts[0]) ?? from;
    if (texts && isLargeNumber(value[1])) want = canonicalNumberText(texts[1]) ?? want;
  }
  const payload = value[2];
  if (typeof payload === 'object' && payload !== null && nestsDeeperThan(payload, MAX_PAYLOAD_DEPTH)) {
    return { reason: `payload nested deeper than ${MAX_PAYLOAD_DEPTH} levels` };
  }
  return checkIds({ from, want, payload });
}

/** A number whose double may not hold every digit it was written with. */
function isLargeNumber(value: unknown): boolean {
  return typeof value === 'number' && Math.abs(value) > Number.MAX_SAFE_INTEGER;
}

/**
 * The source text of the first two elements of a frame that JSON.parse has
 * read as an array of at least three (so it is well-formed): for each, a
 * number's text, or undefined for a string.
 */
function idTexts(text: string): [string | undefined, string | undefined] | undefined {
  const texts: (string | undefined)[] = [];
  let i = text.indexOf('[') + 1;
  for (let element = 0; element < 2; element++) {
    while (/\s/.test(text[i])) i++;
    if (text[i] === '"') {
      // Skip the string, escapes included.
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      i++;
      texts.push(undefined);
    } else {
      const start = i;
      while (i < text.length && /[-+.eE0-9]/.test(text[i])) i++;
      texts.push(text.slice(start, i));
    }
    while (/\s/.test(text[i])) i++;
    if (text[i] !== ',') return undefined;
    i++;
  }
  return [texts[0], texts[1]];
}

export function isRequest(parsed: Request | NotARequest): parsed is Request {
  return (parsed as NotARequest).reason === undefined;
}

// ---- the frames devices send, without JSON.parse ------------------------------
//
// Nearly every frame in the field is `[int, int, "text"]` (spaces after commas
// from Python's json.dumps). Reading those straight from the bytes saves a
// string copy and a JSON.parse per request. Anything else (escapes, floats,
// nested values, odd spacing) returns undefined and goes to JSON.parse.

const SPACE = 0x20;
const QUOTE = 0x22;
const COMMA = 0x2c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const BACKSLASH = 0x5c;
/** Ids are short names: a longer integer is not read here (JSON.parse then says what is wrong). */
const MAX_DIGITS = 128;

/** Set by the token readers below: the token's text and the index just after it. */
let tokenText = '';
let tokenEnd = 0;

function skipSpaces(bytes: Buffer, i: number): number {
  while (i < bytes.length && bytes[i] === SPACE) i++;
  return i;
}

/** A string with no escapes and no control bytes, starting at the quote at `i`. */
function readPlainString(bytes: Buffer, i: number): boolean {
  for (let j = i + 1; j < bytes.length; j++) {
    const byte = bytes[j];
    if (byte === QUOTE) {
      tokenText = bytes.toString('utf8', i + 1, j);
      tokenEnd = j + 1;
      return true;
    }
    if (byte === BACKSLASH || byte < SPACE) return false;
  }
  return false;
}

/** An integer in its canonical JSON form (no leading zero, no "-0"), starting at `i`: its text, every digit, is its id. */
function readInteger(bytes: Buffer, i: number): boolean {
  let j = i;
  if (bytes[j] === MINUS) j++;
  const first = j;
  while (j < bytes.length && bytes[j] >= ZERO && bytes[j] <= NINE) j++;
  const digits = j - first;
  if (digits === 0 || digits > MAX_DIGITS || (bytes[first] === ZERO && (digits > 1 || first > i))) return false;
  tokenText = bytes.toString('latin1', i, j);
  tokenEnd = j;
  return true;
}

/** An id: an integer (its text is its canonical id) or a plain string. */
function readId(bytes: Buffer, i: number): boolean {
  return bytes[i] === QUOTE ? readPlainString(bytes, i) : readInteger(bytes, i);
}

function parseCommonFrame(frame: Buffer): Request | undefined {
  if (frame[0] !== OPEN_BRACKET || frame[frame.length - 1] !== CLOSE_BRACKET) return undefined;
  let i = skipSpaces(frame, 1);
  if (!readId(frame, i)) return undefined;
  const from = tokenText;
  i = skipSpaces(frame, tokenEnd);
  if (frame[i] !== COMMA) return undefined;
  i = skipSpaces(frame, i + 1);
  if (!readId(frame, i)) return undefined;
  const want = tokenText;
  i = skipSpaces(frame, tokenEnd);
  if (frame[i] !== COMMA) return undefined;
  i = skipSpaces(frame, i + 1);
  if (frame[i] !== QUOTE || !readPlainString(frame, i)) return undefined;
  const payload = tokenText;
  i = skipSpaces(frame, tokenEnd);
  return i === frame.length - 1 ? { from, want, payload } : undefined;
}

/** The mailbox a flow names (a number or a non-empty string), as canonicalId() gives it; throws for anything else. */
export function mailboxIdOf(id: unknown): DeviceId {
  const mailboxId = canonicalId(id);
  if (mailboxId === undefined || mailboxId === '') {
    throw new Error(`invalid mailbox id ${JSON.stringify(id) ?? String(id)}: use a number or a non-empty string`);
  }
  return mailboxId;
}
