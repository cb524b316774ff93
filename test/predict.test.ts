// Trainer.predict (the demo page's drawn digit): the same classes as evaluate(), softmax
// probabilities equal to a float64 forward pass on the CPU, one image or many, and safe to call
// while an evaluation is in flight.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { rng } from './support/cpu.js';
import { Trainer } from '../src/nn/trainer.js';
import type { GpuContext } from '../src/gpu/context.js';

describe('Trainer.predict', function () {
  this.timeout(60_000);
  let ctx: GpuContext;
  let trainer: Trainer;
  const count = 230; // not a multiple of the evaluation batch: a partial last batch
  const rand = rng(5);
  const data = {
    count,
    images: Float32Array.from({ length: count * 784 }, () => (rand() < 0.2 ? rand() : 0)),
    labels: Uint8Array.from({ length: count }, () => Math.floor(rand() * 10)),
  };

  before(async () => {
    ctx = await testContext();
    trainer = await Trainer.create(ctx, { net: 'mlp', hidden: 32, seed: 3, batch: 10, evalBatch: 100, optimizer: { kind: 'adam', lr: 1e-3 } });
  });
  after(() => trainer?.destroy());

  it('gives evaluate()\'s classes and softmax probabilities, for many images and for one', async () => {
    // Both at once: they share the evaluation graph's buffers, so the second waits for the first.
    const [ev, p] = await Promise.all([trainer.evaluate(data), trainer.predict(data.images, count)]);
    expect(Array.from(p.predictions)).to.deep.equal(Array.from(ev.predictions));
    for (let i = 0; i < count; i++) {
      const row = Array.from(p.probabilities.subarray(i * 10, i * 10 + 10));
      expect(row.reduce((a, b) => a + b, 0), `row ${i} sums to 1`).to.be.closeTo(1, 1e-5);
      expect(row.indexOf(Math.max(...row)), `row ${i}: the predicted class is the most probable`).to.equal(p.predictions[i]);
    }
    const one = await trainer.predict(data.images.subarray(784 * 7, 784 * 8));
    expect(one.predictions[0]).to.equal(p.predictions[7]);
    const tol = (a: number) => 1e-6 + 1e-5 * Math.abs(a);
    Array.from(one.probabilities).forEach((v, k) => expect(v).to.be.closeTo(p.probabilities[70 + k], tol(v)));
  });

  it('gives the float64 softmax of the logits that the CPU computes from the trained parameters (within 1e-5), and their argmax', async () => {
    // a few steps first, so that the biases are no longer zero
    for (let s = 0; s < 3; s++) {
      trainer.writeBatch(data, Uint32Array.from({ length: 10 }, (_, i) => s * 10 + i));
      trainer.step();
    }
    await trainer.finish();
    const params = await trainer.store.read();
    expect(Object.keys(params).sort()).to.deep.equal(['mlp/b1', 'mlp/b_out', 'mlp/w1', 'mlp/w_out']);
    expect(params['mlp/b_out'].data.some((v) => v !== 0), 'the output bias has moved').to.equal(true);
    const p = await trainer.predict(data.images, count);
    const H = 32, K = 10, P = 784;
    const w1 = params['mlp/w1'].data, b1 = params['mlp/b1'].data, w2 = params['mlp/w_out'].data, b2 = params['mlp/b_out'].data;
    let worst = 0;
    for (let i = 0; i < count; i++) {
      // 784 → 32 relu → 10 in float64, then softmax
      const h = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        let s = b1[j];
        for (let k = 0; k < P; k++) s += data.images[i * P + k] * w1[k * H + j];
        h[j] = Math.max(0, s);
      }
      const logits = new Float64Array(K);
      for (let c = 0; c < K; c++) {
        let s = b2[c];
        for (let j = 0; j < H; j++) s += h[j] * w2[j * K + c];
        logits[c] = s;
      }
      const max = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let c = 0; c < K; c++) {
        const ref = e[c] / sum;
        const err = Math.abs(p.probabilities[i * K + c] - ref);
        worst = Math.max(worst, err);
        expect(err, `image ${i} class ${c}: probability ${p.probabilities[i * K + c]}, float64 ${ref}`).to.be.at.most(1e-5);
      }
      expect(p.predictions[i], `image ${i}: the predicted class is the float64 argmax`).to.equal(logits.indexOf(max));
    }
    console.log(`      ${count} images: largest probability error ${worst.toExponential(2)} against float64`);
  });

  it('rejects too few pixels with a message naming the sizes', async () => {
    let err: unknown;
    await trainer.predict(new Float32Array(784), 2).catch((e) => { err = e; });
    expect(err).to.be.instanceOf(RangeError);
    expect((err as Error).message).to.match(/Trainer\.predict: 2 examples need 1568 floats \(784 each, the model's input shape \[784\]\), got 784/);
  });
});
