// A residual block's gradients through the whole engine: a conv whose input is also read by an Add
// adds its dx to the skip's gradient while writing its own parameters' gradients fresh. One SGD step
// gives g = -(p1 - p0)/lr; the loss's derivative along g, by central differences of the evaluated
// loss, must equal |g|² (per parameter tensor and in all).
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import type { GpuContext } from '../src/gpu/context.js';
import { Trainer } from '../src/nn/trainer.js';
import { activation, add, conv2d, dense, globalAvgPool2d, input } from '../src/nn/layers.js';
import { model } from '../src/nn/model.js';

describe('residual block gradients (conv dx accumulated into a skip) against finite differences', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  it('the derivative of the loss along the SGD step equals |g|², for each conv kernel and all parameters', async () => {
    const x = input([6, 6, 2]);
    const a = conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'a' }).apply(x);
    const b = conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'b' }).apply(a);
    const c = conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c' }).apply(b);
    const r = activation({ activation: 'tanh', name: 'r' }).apply(add([a, c], { name: 'sum' }));
    const y = dense({ units: 3, name: 'out' }).apply(globalAvgPool2d().apply(r));
    const m = model({ inputs: x, outputs: y, name: 'residual_grad' });
    const B = 8, n = 6 * 6 * 2, lr = 1e-3;
    let s = 3;
    const rnd = () => (((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24)) * 2 - 1;
    const data = { count: B, images: Float32Array.from({ length: B * n }, rnd), labels: Uint8Array.from({ length: B }, (_, i) => i % 3), shape: [6, 6, 2], classes: 3 };
    const t = await Trainer.create(ctx, { model: m, batch: B, seed: 1, optimizer: { kind: 'sgd', lr }, evalBatch: B });
    try {
      const p0 = await t.store.read();
      t.writeBatch(data, [...Array(B).keys()]);
      await t.step(true);
      const p1 = await t.store.read();
      const g: Record<string, Float64Array> = {};
      for (const k of Object.keys(p0)) g[k] = Float64Array.from(p0[k].data, (v, i) => (v - p1[k].data[i]) / lr);
      const lossAt = async (eps: number, only?: string): Promise<number> => {
        for (const k of Object.keys(p0)) t.store.write(k, Float32Array.from(p0[k].data, (v, i) => v + (only && k !== only ? 0 : eps * g[k][i])));
        return (await t.evaluate(data)).loss;
      };
      for (const only of [undefined, 'a/kernel', 'b/kernel', 'c/kernel']) {
        const gg = Object.keys(p0).filter((k) => !only || k === only).reduce((acc, k) => acc + g[k].reduce((q, v) => q + v * v, 0), 0);
        expect(gg, `${only ?? 'all'}: a gradient to check`).to.be.greaterThan(1e-5);
        const e = 0.1 / Math.sqrt(gg);
        const numeric = ((await lossAt(e, only)) - (await lossAt(-e, only))) / (2 * e);
        const rel = Math.abs(numeric - gg) / gg;
        console.log(`      ${only ?? 'all'}: |g|² ${gg.toExponential(4)}, finite differences ${numeric.toExponential(4)}, relative ${rel.toExponential(1)}`);
        expect(rel, `${only ?? 'all parameters'}: derivative along g`).to.be.below(1e-2);
      }
    } finally {
      t.destroy();
    }
  });
});
