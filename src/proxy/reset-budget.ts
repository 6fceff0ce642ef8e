// The per-session budget of streams an HTTP/2 client may reset before veer answers them (rapid reset, CVE-2023-44487).

/**
 * A token bucket: `burst` resets at once, refilled at `ratePerSecond`. Cancelling a generation is normal
 * client behaviour; hundreds of cancels in a burst on one connection is the rapid-reset attack, where
 * each HEADERS+RST_STREAM pair costs the client nothing and veer (and an upstream) a request.
 * Time comes from `clock` (milliseconds), so tests step it instead of sleeping.
 */
export class ResetBudget {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly ratePerSecond: number,
    private readonly clock: () => number,
  ) {
    this.tokens = burst;
    this.last = clock();
  }

  /** Spends one reset; false once the budget is exhausted. */
  spend(): boolean {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
