// End to end on real MNIST: each of the five nets trains for a few hundred (cnn, rnn: fewer) steps
// on a subset; the loss must fall and the accuracy on held-out images rise above a stated bound.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { loadMnist, type Mnist } from '../src/data/mnist.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';
import type { GpuContext } from '../src/gpu/context.js';

interface Case {
  opts: Omit<TrainerOptions, 'seed'>;
  steps: number;
  /** Accuracy on 1,000 validation images that the net must exceed after `steps`. */
  bound: number;
}

// Chance is 0.10. Learning rates are the tutorials' except where a short run needs a faster start.
const CASES: Record<string, Case> = {
  softmax: { opts: { net: 'softmax', batch: 100, optimizer: { kind: 'sgd', lr: 0.2 } }, steps: 300, bound: 0.85 },
  bp: { opts: { net: 'bp', batch: 100, optimizer: { kind: 'sgd', lr: 0.5 }, hidden: 50 }, steps: 300, bound: 0.8 },
  mlp: { opts: { net: 'mlp', batch: 100, optimizer: { kind: 'adam', lr: 1e-3 } }, steps: 200, bound: 0.9 },
  cnn: { opts: { net: 'cnn', batch: 50, optimizer: { kind: 'adam', lr: 1e-3 }, keepProb: 0.5 }, steps: 40, bound: 0.7 },
  rnn: { opts: { net: 'rnn', batch: 100, optimizer: { kind: 'adam', lr: 1e-3 } }, steps: 80, bound: 0.5 },
};

describe('training end to end on real MNIST (subset)', function () {
  let ctx: GpuContext;
  let data: Mnist;
  before(async () => {
    ctx = await testContext();
    data = loadMnist({});
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: loss falls and validation accuracy passes ${c.bound} after ${c.steps} steps`, async function () {
      const trainer = await Trainer.create(ctx, { ...c.opts, seed: 7 });
      try {
        const B = trainer.batch;
        const idx = new Uint32Array(B);
        const window = Math.max(5, Math.floor(c.steps / 4));
        const losses: number[] = [];
        for (let s = 0; s < c.steps; s++) {
          for (let b = 0; b < B; b++) idx[b] = (s * B + b) % 20000;
          trainer.writeBatch(data.train, idx);
          if ((s + 1) % window === 0) losses.push((await trainer.step(true)).loss);
          else trainer.step();
        }
        const val = { count: 1000, images: data.validation.images, labels: data.validation.labels };
        const ev = await trainer.evaluate(val);
        console.log(`      ${name}: window losses ${losses.map((l) => l.toFixed(3)).join(' → ')}, validation accuracy ${ev.accuracy.toFixed(3)}`);
        expect(losses.every(Number.isFinite), 'losses are finite').to.equal(true);
        expect(losses[losses.length - 1], 'the loss falls').to.be.lessThan(losses[0]);
        expect(ev.accuracy).to.be.greaterThan(c.bound);
      } finally {
        trainer.destroy();
      }
    });
  }
});
