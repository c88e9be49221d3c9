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
