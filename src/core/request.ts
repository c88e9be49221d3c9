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
  return { from, want, payload: value[2] };
}

export function isRequest(parsed: Request | NotARequest): parsed is Request {
  return (parsed as NotARequest).reason === undefined;
}
