// Reconnect delays: exponential backoff with jitter, shared by every page that keeps a socket open
// (/overlay, /mod, and the WebRTC plugin's viewer and /publish pages).
//
// Attempt n (0 after a success) waits a random time in [ceiling / 2, ceiling), where
// ceiling = min(maxMs, baseMs * 2^n): 250–500 ms, then 500–1000 ms, ... up to maxMs / 2–maxMs.
// The jitter keeps many pages that lost the engine together from all coming back at the same instant.

export class Backoff {
  /**
   * @param {object} [options]
   * @param {number} [options.baseMs=500]  the first ceiling
   * @param {number} [options.maxMs=10000]  the largest ceiling
   * @param {number} [options.maxAttempt=20]  where the attempt count stops growing (the ceiling stops long before)
   */
  constructor({ baseMs = 500, maxMs = 10000, maxAttempt = 20 } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.maxAttempt = maxAttempt;
    /** Failures since the last success. */
    this.attempt = 0;
  }

  /** The wait before the next try (ms); counts one more failure. */
  next() {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, this.maxAttempt);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /** A success (or a deliberate fresh start): the next wait is the shortest again. */
  reset() {
    this.attempt = 0;
  }
}
