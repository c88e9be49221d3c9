/** At most `limit` reports per window (a minute by default); the rest are only counted. */
export class RateLimit {
  private windowStart = 0;
  private reported = 0;
  private dropped = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs = 60_000,
  ) {}

  /**
   * Whether one more event may be reported now. When a new window opens after
   * some were dropped, `onDropped` hears how many.
   */
  take(now: number, onDropped: (count: number) => void): boolean {
    if (now - this.windowStart >= this.windowMs) {
      if (this.dropped > 0) onDropped(this.dropped);
      this.windowStart = now;
      this.reported = 0;
      this.dropped = 0;
    }
    if (this.reported >= this.limit) {
      this.dropped++;
      return false;
    }
    this.reported++;
    return true;
  }
}

/**
 * A node's warnings about what devices or remote brokers do, at most
 * `perMinute` lines a minute (a flood of bad input must not flood the log);
 * the next line after a full minute says how many were left out.
 */
export function limitedWarnings(
  warn: (text: string) => void,
  perMinute: number,
  unlogged: (count: number) => string,
): (text: string) => void {
  const limit = new RateLimit(perMinute);
  return (text) => {
    if (limit.take(Date.now(), (count) => warn(unlogged(count)))) warn(text);
  };
}
