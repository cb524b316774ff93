// A plain training loop for apps, the demo page and tests: the CLI's batch order (a seeded shuffle
// per epoch, whole batches only), one step per batch, loss and accuracy read every `readEvery` steps.
import { DataError, makeShuffler } from '../data/idx.js';
import type { LabelledImages, Trainer, TrainMetrics } from './trainer.js';

export interface TrainStepsOptions {
  steps: number;
  /** Shuffle seed (default: the trainer's seed, as in the CLI). */
  seed?: number;
  /** Read loss and accuracy back every this many steps (default 1: each step's own figures). */
  readEvery?: number;
  /** Called after each read with the metrics and the last step (1-based) they cover; may be async. */
  onMetrics?: (m: TrainMetrics & { step: number }) => void | Promise<void>;
  /** Checked before each step: when aborted, the loop stops there. */
  signal?: AbortSignal;
}

/** Trains `steps` batches of `data` and returns how many ran (fewer only when `signal` aborted). */
export async function trainSteps(trainer: Trainer, data: LabelledImages, opts: TrainStepsOptions): Promise<number> {
  const B = trainer.batch;
  const perEpoch = Math.floor(data.count / B);
  if (perEpoch < 1) throw new DataError(`the training set has ${data.count} images, fewer than one batch of ${B}: use more images or a smaller batch`);
  const readEvery = opts.readEvery ?? 1;
  if (!Number.isInteger(readEvery) || readEvery < 1) throw new RangeError(`trainSteps: readEvery must be a positive integer, got ${readEvery}`);
  const shuffler = makeShuffler(opts.seed ?? trainer.opts.seed);
  const order = new Uint32Array(data.count);
  for (let s = 0; s < opts.steps; s++) {
    if (opts.signal?.aborted) return s;
    const inEpoch = s % perEpoch;
    if (inEpoch === 0) shuffler.permutation(s / perEpoch, data.count, order);
    trainer.writeBatch(data, order.subarray(inEpoch * B, inEpoch * B + B));
    if ((s + 1) % readEvery === 0 || s + 1 === opts.steps) {
      const m = await trainer.step(true);
      await opts.onMetrics?.({ ...m, step: s + 1 });
    } else {
      trainer.step();
    }
  }
  return opts.steps;
}
