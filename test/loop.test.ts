// The one training loop (src/nn/loop.ts), against a stand-in Trainer that records what it is asked
// to do: the CLI's batch order, when reads are submitted and awaited, the hooks, the stop on a
// non-finite loss, and abort. (Real-GPU losses of the same loop: train-e2e, cli-errors, the CLI.)
import { expect } from 'chai';
import { makeShuffler } from '../src/data/idx.js';
import type { LabelledImages } from '../src/data/dataset.js';
import { trainLoop, trainSteps, type LoopEpoch, type LoopRead, type TrainLoopOptions } from '../src/nn/loop.js';
import type { Trainer, TrainMetrics } from '../src/nn/trainer.js';

/** A Trainer as the loop sees it: a log of writes, steps and read deliveries; loss = the step number (or NaN at `nanAt`). */
class FakeTrainer {
  readonly log: string[] = [];
  readonly batches: number[][] = [];
  private sinceRead = 0;
  private submitted = 0;
  constructor(readonly batch: number, readonly opts = { seed: 5 }, private readonly nanAt = -1) {}
  writeBatch(_data: unknown, index: ArrayLike<number>): void {
    this.batches.push(Array.from(index));
  }
  step(read = false): Promise<TrainMetrics> | undefined {
    this.submitted++;
    this.sinceRead++;
    if (!read) {
      this.log.push(`step ${this.submitted}`);
      return undefined;
    }
    const steps = this.sinceRead;
    this.sinceRead = 0;
    const step = this.submitted;
    this.log.push(`step ${step} read`);
    // Resolves a few turns later, like a map of the GPU's results.
    return new Promise((r) => setTimeout(r, 1)).then(() => ({ loss: step === this.nanAt ? NaN : step, accuracy: step / 1000, steps }));
  }
}

const data = (count: number): LabelledImages => ({ count, images: new Float32Array(count), labels: new Uint8Array(count) });

async function run(t: FakeTrainer, count: number, opts: Partial<TrainLoopOptions> & { steps: number }) {
  const reads: LoopRead[] = [];
  const epochs: LoopEpoch[] = [];
  const result = await trainLoop(t as unknown as Trainer, data(count), {
    ...opts,
    onRead: (r) => { reads.push(r); t.log.push(`read ${r.step}`); },
    onEpochEnd: (e) => { epochs.push(e); t.log.push(`epoch ${e.epoch} end`); },
  });
  return { reads, epochs, result };
}

describe('the training loop (src/nn/loop.ts)', () => {
  it('gives the CLI\'s batches: the seeded shuffle of each epoch in whole batches, the rest dropped', async () => {
    const t = new FakeTrainer(4);
    // 23 examples: 5 batches of 4 per epoch; 12 steps = 2 epochs and 2 steps.
    await run(t, 23, { steps: 12 });
    const shuffler = makeShuffler(5); // the trainer's seed by default
    const expected: number[][] = [];
    for (let s = 0; s < 12; s++) {
      const epoch = Math.floor(s / 5), k = s % 5;
      expected.push(Array.from(shuffler.permutation(epoch, 23).subarray(k * 4, k * 4 + 4)));
    }
    expect(t.batches).to.deep.equal(expected);
    const seeded = new FakeTrainer(4);
    await run(seeded, 23, { steps: 3, seed: 9 });
    expect(seeded.batches[0]).to.deep.equal(Array.from(makeShuffler(9).permutation(0, 23).subarray(0, 4)));
  });

  it('going on from startStep gives the same batches as one run', async () => {
    const whole = new FakeTrainer(4);
    await run(whole, 23, { steps: 13 });
    const parts = new FakeTrainer(4);
    await run(parts, 23, { steps: 7 });
    await run(parts, 23, { steps: 6, startStep: 7 });
    expect(parts.batches).to.deep.equal(whole.batches);
  });

  it('reads every readEvery steps of an epoch and at its end, each covering the steps since the last', async () => {
    const t = new FakeTrainer(10);
    // 70 examples: 7 steps per epoch; readEvery 3 → reads after steps 3, 6, 7 | 10, 13, 14 | 17.
    const { reads, epochs, result } = await run(t, 70, { steps: 17, readEvery: 3 });
    expect(reads.map((r) => [r.step, r.steps, r.epoch, r.stepInEpoch])).to.deep.equal([
      [3, 3, 0, 3], [6, 3, 0, 6], [7, 1, 0, 7], [10, 3, 1, 3], [13, 3, 1, 6], [14, 1, 1, 7], [17, 3, 2, 3],
    ]);
    expect(result).to.deep.equal({ steps: 17, epochs: 3, aborted: false });
    // Epoch means weight each read by its steps: (3·3 + 6·3 + 7·1) / 7.
    expect(epochs.map((e) => [e.epoch, e.steps, e.loss])).to.deep.equal([[0, 7, (9 + 18 + 7) / 7], [1, 7, (30 + 39 + 14) / 7], [2, 3, 17]]);
    expect(epochs[0].accuracy).to.be.closeTo((9 + 18 + 7) / 7 / 1000, 1e-15);
  });

  it('readsInFlight 1 (the CLI): a read is awaited only before the next read is submitted, never right after its own step', async () => {
    const t = new FakeTrainer(10);
    await run(t, 1000, { steps: 25, readEvery: 10, readsInFlight: 1 });
    const at = (e: string) => t.log.indexOf(e);
    expect(at('read 10')).to.be.greaterThan(at('step 19'));
    expect(at('read 10')).to.be.lessThan(at('step 20 read'));
    expect(at('read 20')).to.be.greaterThan(at('step 24'));
    expect(at('read 20')).to.be.lessThan(at('step 25 read'));
    expect(t.log.slice(-3)).to.deep.equal(['step 25 read', 'read 25', 'epoch 0 end']);
  });

  it('readsInFlight 0: each read is delivered before the next step is submitted', async () => {
    const t = new FakeTrainer(10);
    await run(t, 1000, { steps: 4 });
    expect(t.log).to.deep.equal(['step 1 read', 'read 1', 'step 2 read', 'read 2', 'step 3 read', 'read 3', 'step 4 read', 'read 4', 'epoch 0 end']);
  });

  it('readsInFlight 2: two reads pending while steps go on; an epoch\'s reads are all delivered before its end hook', async () => {
    const t = new FakeTrainer(10);
    await run(t, 100, { steps: 10, readEvery: 2, readsInFlight: 2 });
    let at = (e: string) => t.log.indexOf(e);
    expect(at('read 4')).to.be.greaterThan(at('step 7')); // reads 4 and 6 in flight while step 7 is submitted
    expect(at('read 4')).to.be.lessThan(at('step 8 read'));
    const t2 = new FakeTrainer(10);
    await run(t2, 50, { steps: 10, readEvery: 2, readsInFlight: 2 });
    at = (e: string) => t2.log.indexOf(e);
    expect(at('read 4')).to.be.greaterThan(at('step 5 read'));
    expect(at('read 5')).to.be.lessThan(at('epoch 0 end'));
    expect(at('epoch 0 end')).to.be.lessThan(at('step 6'));
  });

  it('progress comes after each reading step with the read delivered since, epoch starts with their step counts', async () => {
    const t = new FakeTrainer(10);
    const progress: [number, number | undefined][] = [];
    const starts: [number, number][] = [];
    await trainLoop(t as unknown as Trainer, data(100), {
      steps: 25, readEvery: 5, readsInFlight: 1,
      onProgress: (p) => progress.push([p.stepInEpoch, p.read?.step]),
      onEpochStart: (e) => starts.push([e.epoch, e.steps]),
    });
    expect(starts).to.deep.equal([[0, 10], [1, 10], [2, 5]]);
    expect(progress).to.deep.equal([[5, undefined], [10, 5], [5, undefined], [10, 15], [5, undefined]]);
  });

  it('a non-finite loss stops the loop: the hook\'s error is thrown, that read goes to no onRead', async () => {
    const t = new FakeTrainer(10, { seed: 1 }, 20);
    const reads: number[] = [];
    let seen: LoopRead | undefined;
    let err: unknown;
    try {
      await trainLoop(t as unknown as Trainer, data(1000), {
        steps: 100, readEvery: 10, readsInFlight: 1,
        onRead: (r) => { reads.push(r.step); },
        onNonFinite: (r) => { seen = r; return new Error(`loss ${r.loss} by step ${r.step}`); },
      });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.equal('loss NaN by step 20');
    expect(seen!.epoch).to.equal(0);
    expect(reads).to.deep.equal([10]);
    // seen while step 30's read was about to be submitted: nothing after step 29 ran
    expect(t.log.at(-1)).to.equal('step 29');
  });

  it('without an error from the hook, the loop returns the read; without the hook, NaN losses go to onRead', async () => {
    const t = new FakeTrainer(10, { seed: 1 }, 3);
    const r = await trainLoop(t as unknown as Trainer, data(1000), { steps: 10, onNonFinite: () => undefined });
    expect(r.nonFinite?.step).to.equal(3);
    expect(r.steps).to.equal(3);
    const t2 = new FakeTrainer(10, { seed: 1 }, 3);
    const { reads } = await run(t2, 1000, { steps: 5 });
    expect(reads.map((x) => x.loss)).to.deep.equal([1, 2, NaN, 4, 5]);
  });

  it('an aborted signal stops before the next step and delivers the reads in flight', async () => {
    const t = new FakeTrainer(10);
    const stop = new AbortController();
    const reads: number[] = [];
    const r = await trainLoop(t as unknown as Trainer, data(1000), {
      steps: 100, readEvery: 5, readsInFlight: 1, signal: stop.signal,
      onRead: (x) => { reads.push(x.step); },
      onStep: (s) => { if (s === 12) stop.abort(); },
    });
    expect(r).to.deep.equal({ steps: 12, epochs: 1, aborted: true });
    expect(reads).to.deep.equal([5, 10]);
    expect(t.log.at(-1)).to.equal('step 12');
  });

  it('batchAt replaces the shuffle (the bench\'s batches): one endless epoch, reads every readEvery steps', async () => {
    const t = new FakeTrainer(2);
    const { reads, epochs } = await run(t, 3, { steps: 7, readEvery: 3, batchAt: (s) => [s, s + 100] });
    expect(t.batches).to.deep.equal([0, 1, 2, 3, 4, 5, 6].map((s) => [s, s + 100]));
    expect(reads.map((r) => r.step)).to.deep.equal([3, 6, 7]);
    expect(epochs.map((e) => e.steps)).to.deep.equal([7]);
  });

  it('trainSteps: a read per step to onMetrics with its step, the number of steps run', async () => {
    const t = new FakeTrainer(10);
    const got: (TrainMetrics & { step: number })[] = [];
    const n = await trainSteps(t as unknown as Trainer, data(30), { steps: 4, onMetrics: (m) => { got.push(m); } });
    expect(n).to.equal(4);
    expect(got).to.deep.equal([1, 2, 3, 4].map((s) => ({ loss: s, accuracy: s / 1000, steps: 1, step: s })));
    const stop = new AbortController();
    stop.abort();
    expect(await trainSteps(t as unknown as Trainer, data(30), { steps: 4, signal: stop.signal })).to.equal(0);
  });

  it('refuses data that make no batch and bad settings', async () => {
    const t = new FakeTrainer(10) as unknown as Trainer;
    let err: unknown;
    try {
      await trainLoop(t, data(9), { steps: 1 });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.include('9 images, fewer than one batch of 10');
    for (const bad of [{ readEvery: 0 }, { readsInFlight: -1 }, { steps: 1.5 }, { startStep: -1 }]) {
      let e2: unknown;
      try {
        await trainLoop(t, data(100), { steps: 1, ...bad });
      } catch (e) {
        e2 = e;
      }
      expect(e2, JSON.stringify(bad)).to.be.instanceOf(RangeError);
    }
  });
});
