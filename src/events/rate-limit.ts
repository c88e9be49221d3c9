/**
 * How often one source may warn: what boards, remote brokers and MQTT clients cause can repeat without
 * end, and a flood of bad input must not flood the log or the flow.
 */

/** Warnings of one broker (or one status node) each minute at most; the rest are counted. */
const WARNINGS_PER_MINUTE = 20;

/** At most `limit` reports per window (a minute by default); the rest are only counted. */
class RateLimit {
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
 * `warn`, at most WARNINGS_PER_MINUTE times a minute; once a full minute has passed, the next warning
 * comes after `dropped`, which hears how many were left out.
 */
export function limitedWarnings<W = string>(
  warn: (warning: W) => void,
  dropped: (count: number) => void,
): (warning: W) => void {
  const limit = new RateLimit(WARNINGS_PER_MINUTE);
  return (warning) => {
    if (limit.take(Date.now(), dropped)) warn(warning);
  };
}

/**
 * A failure that retries repeat every few seconds (a port in use, a broker out of reach): `log` hears it
 * once, and again only when it changes or after `recovered()`.
 */
export function loggedOnce(log: (error: string) => void): {
  failed(error: string | undefined): void;
  recovered(): void;
} {
  let last: string | undefined;
  return {
    failed(error) {
      if (error === last) return;
      last = error;
      log(error ?? '');
    },
    recovered() {
      last = undefined;
    },
  };
}
