// --log FILE.csv | FILE.jsonl: a row per metrics read and per evaluation, as Keras's CSVLogger
// writes a row per epoch. Each row is one write(2) on a file opened at the start, so a run that is
// killed keeps every row written so far, each whole.
import { closeSync, openSync, writeSync } from 'node:fs';

/** The file name endings --log accepts: the format follows the extension. */
export const LOG_EXTENSIONS = ['.csv', '.jsonl'] as const;

/** The columns, in CSV order. A train row leaves the val_ fields empty, a validation or test row the training ones. */
export const LOG_COLUMNS = ['event', 'step', 'epoch', 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'examples_per_s', 'seconds'] as const;
export type LogColumn = (typeof LOG_COLUMNS)[number];

/** One row: 'train' per read (the mean over the steps since the previous read), 'validation' per evaluation, 'test' at the end. */
export type LogRow = { event: 'train' | 'validation' | 'test' } & Partial<Record<Exclude<LogColumn, 'event'>, number>>;

export class MetricsLog {
  private fd: number | undefined;
  private readonly jsonl: boolean;
  private readonly t0 = performance.now();

  /** Creates (or empties) `path` and, for CSV, writes the header. */
  constructor(readonly path: string) {
    this.jsonl = path.toLowerCase().endsWith('.jsonl');
    this.fd = openSync(path, 'w');
    if (!this.jsonl) writeSync(this.fd, LOG_COLUMNS.join(',') + '\n');
  }

  /** Appends `row` (with the seconds since the log was opened, unless given) in one write. */
  write(row: LogRow): void {
    if (this.fd === undefined) return;
    const full: LogRow = { ...row, seconds: row.seconds ?? round((performance.now() - this.t0) / 1000) };
    const line = this.jsonl
      ? JSON.stringify(Object.fromEntries(LOG_COLUMNS.filter((c) => full[c] !== undefined).map((c) => [c, full[c]])))
      : LOG_COLUMNS.map((c) => (full[c] === undefined ? '' : String(full[c]))).join(',');
    writeSync(this.fd, line + '\n');
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A figure with 6 significant digits, enough for a log and short. */
export function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}

/**
 * The rows of a training run from the loop's reads: each read's examples per second counts the
 * steps since the previous read over the time between the two deliveries.
 */
export class ReadRows {
  private last = performance.now();
  /** The last step read (an evaluation is logged at it). */
  private step = 0;

  constructor(private readonly log: MetricsLog, private readonly batch: number, private readonly lr: (step: number) => number) {}

  /** A read of the loop (epoch 0-based, as the loop gives it; logged 1-based as the CLI prints it). */
  read(r: { step: number; epoch: number; loss: number; accuracy: number; steps: number }): void {
    const now = performance.now();
    const seconds = (now - this.last) / 1000;
    this.last = now;
    this.step = r.step;
    this.log.write({
      event: 'train', step: r.step, epoch: r.epoch + 1, loss: round(r.loss), accuracy: round(r.accuracy),
      lr: this.lr(r.step), examples_per_s: seconds > 0 ? round((r.steps * this.batch) / seconds) : undefined,
    });
  }

  /** An evaluation after the last step read (a validation at an epoch's end, or the test set at the end). */
  evaluation(event: 'validation' | 'test', epoch: number | undefined, e: { loss: number; accuracy: number }): void {
    this.log.write({ event, step: this.step, epoch: epoch === undefined ? undefined : epoch + 1, val_loss: round(e.loss), val_accuracy: round(e.accuracy) });
    this.last = performance.now(); // an evaluation's time is not training time
  }
}
