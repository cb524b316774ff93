// The one training loop, used by the CLI, the demo page (through trainSteps), the soak test and the
// bench: batches in the CLI's order (a seeded shuffle per epoch, whole batches only), one step
// per batch, loss and accuracy read back every `readEvery` steps and at each epoch's end, with up
// to `readsInFlight` reads left pending while later steps are submitted (the GPU never waits for
// the host), hooks for progress, reads and epoch ends, a stop on a non-finite loss, and an AbortSignal.
import { DataError, makeShuffler } from '../data/idx.js';
import type { LabelledImages } from '../data/dataset.js';
import type { Trainer, TrainMetrics } from './trainer.js';

/** A read-back: the mean loss and accuracy over the steps since the previous one. */
export interface LoopRead extends TrainMetrics {
  /** The last step it covers, 1-based over the run (step k is the k-th batch from step 0 of epoch 0). */
  step: number;
  /** The 0-based epoch of those steps (reads never span two epochs). */
  epoch: number;
  /** Steps of that epoch done by then (1-based). */
  stepInEpoch: number;
}

/** Where the loop is after submitting a step that reads back. */
export interface LoopProgress {
  step: number;
  epoch: number;
  stepInEpoch: number;
  /** The read delivered since the previous progress call, if any (with readsInFlight ≥ 1 it covers earlier steps). */
  read: LoopRead | undefined;
}

/** An epoch that ended: its steps and mean training figures. */
export interface LoopEpoch {
  epoch: number;
  /** Steps this run did in the epoch. */
  steps: number;
  /** Mean training loss and accuracy over those steps (the reads weighted by the steps they cover). */
  loss: number;
  accuracy: number;
  /** Wall time from the epoch's first step to its last read. */
  seconds: number;
}

/** Options of trainLoop. */
export interface TrainLoopOptions {
  /** Steps to run. */
  steps: number;
  /** The step to start at (default 0): the loop goes on with that epoch's order, e.g. after an evaluation pause. */
  startStep?: number;
  /** Shuffle seed (default: the trainer's seed, as in the CLI). */
  seed?: number;
  /** Read loss and accuracy back every this many steps of an epoch, and at its last step (default 1). */
  readEvery?: number;
  /**
   * Reads left pending while later steps are submitted (default 0). 0: each read is awaited right
   * after its step is submitted, so the hooks see the GPU state of that step. 1 (the CLI): a read is
   * awaited only when the next one is about to be submitted, readEvery steps later.
   */
  readsInFlight?: number;
  /** The examples of step `step` (0-based over the run) instead of the shuffled order; then there are no epochs unless epochSteps is given. */
  batchAt?: (step: number) => ArrayLike<number>;
  /** Steps per epoch (default: whole batches of the data; with batchAt, one endless epoch). */
  epochSteps?: number;
  /** Called when an epoch starts, with the number of steps this run will do in it. */
  onEpochStart?: (e: { epoch: number; steps: number }) => void;
  /** Called right before a step's batch is written (step 0-based over the run). */
  beforeStep?: (step: number) => void;
  /** Called after each step is submitted (step 1-based over the run); may be async (the loop waits, e.g. for a checkpoint). */
  onStep?: (step: number) => void | Promise<void>;
  /** Called with each read-back, in order; may be async (the loop waits). */
  onRead?: (r: LoopRead) => void | Promise<void>;
  /** Called after each step that reads back is submitted (and, with readsInFlight 0, its read delivered). */
  onProgress?: (p: LoopProgress) => void;
  /** Called after an epoch's last read (or the run's, in a run that ends mid-epoch); may be async (the loop waits, e.g. for an evaluation). */
  onEpochEnd?: (e: LoopEpoch) => void | Promise<void>;
  /**
   * Called instead of onRead when a read's loss is not finite; the loop stops. An Error returned is
   * thrown; otherwise the loop returns with `nonFinite` set. Without this hook such reads go to onRead.
   */
  onNonFinite?: (r: LoopRead) => Error | void;
  /** Checked before each step: when aborted, the loop delivers the reads in flight and stops. */
  signal?: AbortSignal;
}

/** What a trainLoop run did. */
export interface LoopResult {
  /** Steps run (fewer than asked only when stopped). */
  steps: number;
  /** Epochs started. */
  epochs: number;
  aborted: boolean;
  /** The read whose loss was not finite, when onNonFinite stopped the loop without throwing. */
  nonFinite?: LoopRead;
}

interface Pending {
  metrics: Promise<TrainMetrics>;
  step: number;
  epoch: number;
  stepInEpoch: number;
}

class NonFiniteStop {
  constructor(readonly read: LoopRead) {}
}

/** Trains `opts.steps` batches of `data` (see TrainLoopOptions). Throws DataError when the data make no batch. */
export async function trainLoop(trainer: Trainer, data: LabelledImages, opts: TrainLoopOptions): Promise<LoopResult> {
  const B = trainer.batch;
  const count = data.count;
  const readEvery = opts.readEvery ?? 1;
  const inFlight = opts.readsInFlight ?? 0;
  const start = opts.startStep ?? 0;
  if (!Number.isInteger(opts.steps) || opts.steps < 0) throw new RangeError(`trainLoop: steps must be a whole number ≥ 0, got ${opts.steps}`);
  if (!Number.isInteger(readEvery) || readEvery < 1) throw new RangeError(`trainLoop: readEvery must be a positive integer, got ${readEvery}`);
  if (!Number.isInteger(inFlight) || inFlight < 0) throw new RangeError(`trainLoop: readsInFlight must be a whole number ≥ 0, got ${inFlight}`);
  if (!Number.isInteger(start) || start < 0) throw new RangeError(`trainLoop: startStep must be a whole number ≥ 0, got ${start}`);
  const batchAt = opts.batchAt;
  const perEpoch = opts.epochSteps ?? (batchAt ? Infinity : Math.floor(count / B));
  if (!batchAt && Math.floor(count / B) < 1) throw new DataError(`the training set has ${count} images, fewer than one batch of ${B}: use more images or a smaller batch`);
  if (!(perEpoch >= 1) || (perEpoch !== Infinity && !Number.isInteger(perEpoch))) throw new RangeError(`trainLoop: epochSteps must be a positive integer, got ${perEpoch}`);
  if (!batchAt && perEpoch * B > count) throw new RangeError(`trainLoop: epochSteps ${perEpoch} of ${B} examples need more than the ${count} examples`);

  const shuffler = batchAt ? undefined : makeShuffler(opts.seed ?? trainer.opts.seed);
  const order = batchAt ? undefined : new Uint32Array(count);
  const end = start + opts.steps;
  const pending: Pending[] = [];
  let latest: LoopRead | undefined;
  let epochs = 0;
  let epochStart = 0, lossSum = 0, accSum = 0, readSteps = 0;

  const deliver = async (p: Pending) => {
    const m = await p.metrics;
    const read: LoopRead = { ...m, step: p.step, epoch: p.epoch, stepInEpoch: p.stepInEpoch };
    if (!Number.isFinite(m.loss) && opts.onNonFinite) throw new NonFiniteStop(read);
    lossSum += m.loss * m.steps;
    accSum += m.accuracy * m.steps;
    readSteps += m.steps;
    latest = read;
    await opts.onRead?.(read);
  };
  const drain = async () => {
    while (pending.length) await deliver(pending.shift()!);
  };

  let s = start;
  let submitted = 0;
  try {
    for (; s < end; s++) {
      if (opts.signal?.aborted) {
        await drain();
        return { steps: submitted, epochs, aborted: true };
      }
      const epoch = Math.floor(s / perEpoch);
      const k = s % perEpoch; // step within the epoch, 0-based (s itself for one endless epoch)
      if (s === start || k === 0) {
        if (order) shuffler!.permutation(epoch, count, order);
        epochs++;
        epochStart = performance.now();
        lossSum = accSum = readSteps = 0;
        latest = undefined; // a bar of the new epoch shows no loss of the last one
        opts.onEpochStart?.({ epoch, steps: Math.min(perEpoch - k, end - s) });
      }
      opts.beforeStep?.(s);
      trainer.writeBatch(data, batchAt ? batchAt(s) : order!.subarray(k * B, k * B + B));
      const lastOfEpoch = k === perEpoch - 1 || s === end - 1;
      if ((k + 1) % readEvery === 0 || lastOfEpoch) {
        // The CLI's order: wait for the read of readEvery steps ago (long finished), then submit this one.
        while (pending.length > 0 && pending.length >= inFlight) await deliver(pending.shift()!);
        pending.push({ metrics: trainer.step(true), step: s + 1, epoch, stepInEpoch: k + 1 });
        submitted++;
        if (inFlight === 0) await deliver(pending.shift()!);
        opts.onProgress?.({ step: s + 1, epoch, stepInEpoch: k + 1, read: latest });
        latest = undefined;
      } else {
        trainer.step();
        submitted++;
      }
      const stepped = opts.onStep?.(s + 1);
      if (stepped) await stepped;
      if (lastOfEpoch) {
        await drain();
        const steps = s + 1 - Math.max(start, s - k);
        await opts.onEpochEnd?.({ epoch, steps, loss: lossSum / readSteps, accuracy: accSum / readSteps, seconds: (performance.now() - epochStart) / 1000 });
      }
    }
    await drain();
  } catch (e) {
    // Reads left behind must not surface later as unhandled rejections.
    for (const p of pending) p.metrics.catch(() => {});
    if (e instanceof NonFiniteStop) {
      const err = opts.onNonFinite!(e.read);
      if (err instanceof Error) throw err;
      return { steps: submitted, epochs, aborted: false, nonFinite: e.read };
    }
    throw e;
  }
  return { steps: submitted, epochs, aborted: false };
}

/** Options of trainSteps. */
export interface TrainStepsOptions {
  steps: number;
  /** The step to start at (default 0), e.g. a restored state's `step`: that epoch's order goes on from there. */
  startStep?: number;
  /** Shuffle seed (default: the trainer's seed, as in the CLI). */
  seed?: number;
  /** Read loss and accuracy back every this many steps of an epoch and at its end (default 1: each step's own figures). */
  readEvery?: number;
  /** Called after each read with the metrics and the last step (1-based) they cover; may be async. */
  onMetrics?: (m: TrainMetrics & { step: number }) => void | Promise<void>;
  /** Checked before each step: when aborted, the loop stops there. */
  signal?: AbortSignal;
}

/**
 * Trains `steps` batches of `data` and returns how many ran (fewer only when `signal` aborted):
 * trainLoop with each read awaited before the next step, for apps and the demo page.
 */
export async function trainSteps(trainer: Trainer, data: LabelledImages, opts: TrainStepsOptions): Promise<number> {
  const onMetrics = opts.onMetrics;
  const r = await trainLoop(trainer, data, {
    steps: opts.steps, startStep: opts.startStep, seed: opts.seed, readEvery: opts.readEvery, signal: opts.signal,
    onRead: onMetrics && ((m) => onMetrics({ loss: m.loss, accuracy: m.accuracy, steps: m.steps, step: m.step })),
  });
  return r.steps;
}
