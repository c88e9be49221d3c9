/** A reading as sensors send it: a plain decimal number in text ("26.545", "-1", "603"; not "1e3", " 1", "0x10"). */
const DECIMAL = /^-?\d+(\.\d+)?$/;

/** Whether `value` is a reading in text: a flow gets it as a number, Home Assistant as a sensor's state. */
export function isDecimal(value: unknown): value is string {
  return typeof value === 'string' && DECIMAL.test(value);
}
