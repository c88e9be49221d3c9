/** A frame's meaning: `[from, want, payload]` (protocol section 1). */

/** A device id in its canonical text: `1` and `"1"` are both "1". */
export type DeviceId = string;

export interface Request {
  from: DeviceId;
  want: DeviceId;
  payload: unknown;
}

/** A frame that is not a request, and why (protocol section 5). */
export interface NotARequest {
  reason: string;
}

/**
 * The canonical text of an id: a number by its JSON text, a string as itself.
 * Returns undefined for anything else (objects, booleans, null, Infinity).
 */
export function canonicalId(value: unknown): DeviceId | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return JSON.stringify(value);
  return undefined;
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
    for (const child of Object.values(item)) if (typeof child === 'object' && child !== null) pending.push([child, depth + 1]);
  }
  return false;
}

export function parseRequest(frame: Buffer): Request | NotARequest {
  let value: unknown;
  try {
    value = JSON.parse(frame.toString('utf8'));
  } catch {
    return { reason: 'invalid JSON' };
  }
  if (!Array.isArray(value) || value.length !== 3) {
    return { reason: 'not a three-element array [from, want, payload]' };
  }
  const from = canonicalId(value[0]);
  const want = canonicalId(value[1]);
  if (from === undefined || want === undefined) {
    return { reason: 'device ids must be numbers or strings' };
  }
  const payload = value[2];
  if (typeof payload === 'object' && payload !== null && nestsDeeperThan(payload, MAX_PAYLOAD_DEPTH)) {
    return { reason: `payload nested deeper than ${MAX_PAYLOAD_DEPTH} levels` };
  }
  return { from, want, payload };
}

export function isRequest(parsed: Request | NotARequest): parsed is Request {
  return (parsed as NotARequest).reason === undefined;
}
