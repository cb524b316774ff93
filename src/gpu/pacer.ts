/**
 * Paces read-backs where waiting for the GPU costs CPU: dawn.node polls its event queue on the
 * main thread while a mapAsync is pending, which takes a core from a software adapter's worker
 * threads. So the host sleeps through most of the work's expected time, then maps.
 *
 * The estimate must not feed on its own sleeps. When a map resolves at once after the sleep, the
 * GPU finished at some unknown time before the host woke, and "begun to done" measures the sleep,
 * not the GPU: pacing by it settles at the timer's slack divided by the undershoot (ten times
 * over at 0.9), and a slow first step would slow the next dozens. Such a read only bounds the
 * work from above, so it shortens the estimate; a read that had to wait measures it.
 */
export class ReadPacer {
  /** Expected GPU time per unit of work (ms); 0 until a read has measured it. */
  ms = 0;

  private readonly undershoot: number;
  private readonly now: () => number;
  private readonly wait: (ms: number) => Promise<void>;

  /**
   * @param opts.undershoot fraction of the expected time to sleep (a little early rather than
   *   late: the map then waits only a few polls); the clock and timer are replaceable for tests
   */
  constructor(opts: { undershoot?: number; now?: () => number; sleep?: (ms: number) => Promise<void> } = {}) {
    this.undershoot = opts.undershoot ?? 0.9;
    this.now = opts.now ?? (() => performance.now());
    this.wait = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /**
   * Sleeps until `units` of work begun at `since` (performance.now()) should be nearly done.
   * Returns when it woke, or undefined if it did not sleep; pass that to `done`.
   */
  async sleep(since: number, units = 1): Promise<number | undefined> {
    if (!this.ms) return undefined;
    const wait = since + units * this.ms * this.undershoot - this.now();
    if (wait < MIN_SLEEP_MS) return undefined;
    await this.wait(Math.min(wait, MAX_SLEEP_MS));
    return this.now();
  }

  /** Records that `units` of work begun at `since` were seen done just now; `woke` is what `sleep` returned. */
  done(since: number, units: number, woke: number | undefined): void {
    const now = this.now();
    if (woke !== undefined && now - woke < PROMPT_MS) {
      // Done before the host woke: the work took at most woke − since. Aim well short of that
      // (reads that wait then measure it again): a stale, long estimate is gone in a few steps.
      this.ms = Math.min(this.ms, (woke - since) / units) * SHRINK;
      return;
    }
    const ms = (now - since) / units;
    this.ms = this.ms ? 0.7 * this.ms + 0.3 * ms : ms;
  }
}

/** Shorter waits are left to polling: a timer's slack would be a large share of them. */
const MIN_SLEEP_MS = 1;
const MAX_SLEEP_MS = 10_000;
/** A map that resolves within this of waking found the work already done (a poll takes tens of µs). */
const PROMPT_MS = 0.3;
const SHRINK = 0.8;
