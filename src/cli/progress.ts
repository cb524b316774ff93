// A progress bar per epoch on a terminal; plain periodic lines when the output is not a terminal.

/** The stream the progress goes to (process.stderr, or a test's collector). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  stream: ProgressStream;
  /** Steps (batches) in this epoch. */
  total: number;
  /** Examples per step, for examples/s. */
  batch: number;
  /** 1-based epoch shown in the label, and the number of epochs (when known). */
  epoch: number;
  epochs?: number;
  /** Draw a bar (default: stream.isTTY). */
  tty?: boolean;
  /** Clock in ms (default performance.now); tests pass a fake one. */
  now?: () => number;
  /** Least ms between two redraws of the bar (default 100). */
  redrawMs?: number;
  /** Without a terminal, print a line each time this fraction of the epoch is done (default 0.1). */
  every?: number;
}

/** `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function formatRate(r: number): string {
  if (!Number.isFinite(r)) return '?';
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

/**
 * Progress of one epoch. Call `update(stepsDone, loss?)` after steps (loss when it was read back;
 * the running loss is the mean of the losses given this epoch), then `finish()`.
 */
export class EpochProgress {
  private readonly o: Required<Omit<ProgressOptions, 'epochs'>> & { epochs?: number };
  private readonly start: number;
  private done = 0;
  private lossSum = 0;
  private lossCount = 0;
  private lastDraw = -Infinity;
  private nextMark: number;
  private finished = false;

  constructor(opts: ProgressOptions) {
    if (!(opts.total >= 1)) throw new RangeError(`EpochProgress: total ${opts.total} must be ≥ 1`);
    this.o = {
      tty: opts.stream.isTTY === true,
      now: () => performance.now(),
      redrawMs: 100,
      every: 0.1,
      ...opts,
    };
    this.start = this.o.now();
    this.nextMark = this.o.every;
  }

  /** Mean of the losses given so far this epoch (NaN when none). */
  get runningLoss(): number {
    return this.lossCount > 0 ? this.lossSum / this.lossCount : NaN;
  }

  /** Seconds since the epoch started. */
  get elapsed(): number {
    return (this.o.now() - this.start) / 1000;
  }

  update(stepsDone: number, loss?: number): void {
    if (this.finished) return;
    this.done = Math.min(Math.max(stepsDone, 0), this.o.total);
    if (loss !== undefined) {
      this.lossSum += loss;
      this.lossCount++;
    }
    if (this.o.tty) {
      const t = this.o.now();
      if (t - this.lastDraw >= this.o.redrawMs || this.done === this.o.total) {
        this.lastDraw = t;
        this.drawBar();
      }
    } else if (this.done / this.o.total >= this.nextMark - 1e-9 && this.done < this.o.total) {
      while (this.nextMark <= this.done / this.o.total + 1e-9) this.nextMark += this.o.every;
      this.o.stream.write(this.line() + '\n');
    }
  }

  /** Ends the epoch: the full bar and a newline on a terminal, a last line otherwise. */
  finish(): void {
    if (this.finished) return;
    if (this.o.tty) {
      this.drawBar();
      this.o.stream.write('\n');
    } else {
      this.o.stream.write(this.line() + '\n');
    }
    this.finished = true;
  }

  private label(): string {
    return this.o.epochs ? `epoch ${this.o.epoch}/${this.o.epochs}` : `epoch ${this.o.epoch}`;
  }

  /** steps, examples/s, ETA (or elapsed when done), running loss. */
  private stats(): string {
    const secs = this.elapsed;
    const rate = secs > 0 ? (this.done * this.o.batch) / secs : NaN;
    const stepRate = secs > 0 ? this.done / secs : NaN;
    const left = this.o.total - this.done;
    const time = left === 0 ? `time ${formatDuration(secs)}` : `ETA ${this.done > 0 ? formatDuration(left / stepRate) : '?'}`;
    const loss = this.lossCount === 0 ? '' : ` loss ${this.runningLoss.toFixed(4)}`;
    const w = String(this.o.total).length;
    return `${String(this.done).padStart(w)}/${this.o.total} ${formatRate(rate)} ex/s ${time}${loss}`;
  }

  private line(): string {
    const pct = Math.floor((100 * this.done) / this.o.total);
    return `${this.label()} ${String(pct).padStart(3)}% ${this.stats()}`;
  }

  private drawBar(): void {
    const label = this.label();
    const stats = this.stats();
    const cols = this.o.stream.columns && this.o.stream.columns > 20 ? this.o.stream.columns : 80;
    const pct = Math.floor((100 * this.done) / this.o.total);
    const fixed = label.length + stats.length + 10; // " |", "| ", "100% ", spaces
    const width = Math.max(10, Math.min(40, cols - 1 - fixed));
    const filled = Math.round((width * this.done) / this.o.total);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    let text = `${label} ${String(pct).padStart(3)}% |${bar}| ${stats}`;
    if (text.length > cols - 1) text = text.slice(0, cols - 1);
    this.o.stream.write(`\r${text}\x1b[K`);
  }
}
