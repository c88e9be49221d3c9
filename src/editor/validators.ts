/**
 * Property validators for the nodes' edit dialogs. Node-RED 3.1 and later call
 * a validator with `opt` and show the message it returns; Node-RED 3.0 passes
 * nothing and wants `false`. So each validator is a check (true when the value
 * is fine) and the catalogue message to give when it is not.
 */

/** What Node-RED 3.1 and later pass a validator (its presence is what matters). */
export interface ValidatorOptions {
  label?: string;
}

/** A property's `validate`: it must take exactly two parameters, or Node-RED ignores the message it returns. */
export type Validator<N> = (this: N, value: unknown, opt?: ValidatorOptions) => boolean | string;

/** A node definition after `RED.nodes.registerType`, which gives it `_`: its own message catalogue. */
export interface Catalogue {
  _?: (key: string, options?: Record<string, string | number>) => string;
}

/** A validator from `isValid`; when it fails, `key` from `catalogue`'s messages (3.1+) or false (3.0). */
export function validator<N>(
  isValid: (this: N, value: unknown) => boolean,
  catalogue: Catalogue,
  key: string,
  options?: Record<string, string | number>,
): Validator<N> {
  return function (value, opt) {
    if (isValid.call(this, value)) return true;
    return opt && catalogue._ ? catalogue._(key, options) : false;
  };
}

/** Empty: never set, or cleared in the dialog (the runtime's default applies). */
export function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || String(value).trim() === '';
}

function numberFrom(value: unknown): number {
  return isEmpty(value) ? NaN : Number(String(value).trim());
}

/** A whole number in [min, max]. */
export function isInteger(min: number, max: number): (value: unknown) => boolean {
  return (value) => {
    const n = numberFrom(value);
    return Number.isInteger(n) && n >= min && n <= max;
  };
}

/** A number of seconds (fractions allowed) in [min, max]. */
export function isSeconds(min: number, max: number): (value: unknown) => boolean {
  return (value) => {
    const n = numberFrom(value);
    return Number.isFinite(n) && n >= min && n <= max;
  };
}

/** One of `choices`. */
export function isOneOf(choices: readonly string[]): (value: unknown) => boolean {
  return (value) => choices.indexOf(String(value).trim()) >= 0;
}

/** Some text besides spaces. */
export function isFilled(value: unknown): boolean {
  return !isEmpty(value);
}

const IPV4 = /^(\d{1,3})(\.\d{1,3}){3}$/;

/** Comma-separated IPv4/IPv6 addresses or CIDR ranges, or nothing (the runtime checks them fully). */
export function isAddressList(value: unknown): boolean {
  return String(value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .every((item) => {
      const [address, bits, ...rest] = item.split('/');
      const v6 = address.indexOf(':') >= 0;
      if (!v6 && !IPV4.test(address)) return false;
      if (bits === undefined) return true;
      return rest.length === 0 && /^\d+$/.test(bits) && Number(bits) <= (v6 ? 128 : 32);
    });
}

/**
 * `RED.nodes.registerType` for a definition whose validators may return a
 * message: @types/node-red types `validate` as returning a boolean only (the
 * Node-RED 3.0 contract), so the definition is typed by the caller instead.
 */
export function registerType(type: string, definition: Catalogue): void {
  RED.nodes.registerType(type, definition as Parameters<typeof RED.nodes.registerType>[1]);
}
