// BatchNormalization, LayerNormalization, Embedding and gelu as layers: a model's parameter
// gradients through autodiff against a float64 CPU model, batch norm's running statistics after
// 5 training steps and its evaluation from them, an Embedding model learning a sequence rule,
// the ids check, and the spec.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { expectClose, matmulRef, relError, rng } from './support/cpu.js';
import { expectEachClose } from './support/per-element.js';
import { conv2dRef } from './ref/conv2d.js';
import { softmaxXentRef } from './ref/softmax-xent.js';
import { geluRef } from './ref/gelu.js';
import { batchNormInferenceRef, normRef, runningUpdateRef } from './ref/norm.js';
import { embeddingRef } from './ref/embedding.js';
import { CompiledGraph } from '../src/graph/recorder.js';
import { createStepCounter } from '../src/kernels/step.js';
import { sequential, type Model } from '../src/nn/model.js';
import { activation, conv2d, dense, flatten } from '../src/nn/layers.js';
import { batchNorm, embedding, layerNorm } from '../src/nn/norm-layers.js';
import { modelFromKeras, modelFromSpec, modelToSpec } from '../src/nn/spec.js';
import { Trainer } from '../src/nn/trainer.js';
import type { GpuContext } from '../src/gpu/context.js';

type W64 = Record<string, Float64Array>;
const EPS = 1e-3;

interface Case {
  title: string;
  model: () => Model;
  batch: number;
  /** The inputs: f32 values or u32 ids, [batch, ...input shape]. */
  x: Float32Array | Uint32Array;
  labels: Uint32Array;
  /** The float64 CPU model's mean loss. */
  loss(W: W64): number;
}

function cases(): Case[] {
  const rand = rng(2026);
  const f32 = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * s);
  const labels = (B: number, C: number) => Uint32Array.from({ length: B }, () => Math.floor(rand() * C));
  const dense64 = (x: ArrayLike<number>, W: W64, name: string, B: number, Out: number) =>
    matmulRef(x, W[`${name}/kernel`], B, Out, W[`${name}/kernel`].length / Out, { bias: W[`${name}/bias`] });
  const out: Case[] = [];
  {
    const B = 5, x = f32(B * 6, 2), y = labels(B, 3);
    out.push({
      // no bias before batch norm: its mean subtraction cancels one (a zero gradient)
      title: 'dense → batchNorm → gelu → layerNorm → dense',
      model: () => sequential([6], [dense({ units: 5, useBias: false, name: 'd1' }), batchNorm({ name: 'bn' }), activation({ activation: 'gelu', name: 'act' }), layerNorm({ name: 'ln' }), dense({ units: 3, name: 'out' })]),
      batch: B, x, labels: y,
      loss(W) {
        const h = dense64(x, W, 'd1', B, 5);
        const n = normRef('batch', h, B, 5, EPS, W['bn/gamma'], W['bn/beta']).y;
        const l = normRef('layer', geluRef(n), B, 5, EPS, W['ln/gamma'], W['ln/beta']).y;
        return softmaxXentRef(dense64(l, W, 'out', B, 3), y, B, 3).mean;
      },
    });
  }
  {
    const B = 3, x = f32(B * 5 * 4 * 2), y = labels(B, 3);
    const s = { batch: B, inH: 5, inW: 4, inC: 2, kH: 3, kW: 3, outC: 3, strideH: 1, strideW: 1, padding: 'SAME' as const };
    out.push({
      title: 'conv2d → batchNorm (over batch, H, W) → flatten → dense gelu → dense',
      model: () => sequential([5, 4, 2], [conv2d({ filters: 3, kernelSize: 3, padding: 'same', useBias: false, name: 'conv' }), batchNorm({ name: 'bn' }), flatten(), dense({ units: 4, activation: 'gelu', name: 'd1' }), dense({ units: 3, name: 'out' })]),
      batch: B, x, labels: y,
      loss(W) {
        const c = conv2dRef(s, x, W['conv/kernel']);
        const n = normRef('batch', c, B * 20, 3, EPS, W['bn/gamma'], W['bn/beta']).y;
        return softmaxXentRef(dense64(geluRef(dense64(n, W, 'd1', B, 4)), W, 'out', B, 3), y, B, 3).mean;
      },
    });
  }
  {
    const B = 4, T = 7, V = 5, D = 4;
    const ids = Uint32Array.from({ length: B * T }, () => Math.floor(rand() * V)), y = labels(B, 3);
    out.push({
      title: 'embedding → layerNorm → flatten → dense (u32 ids in)',
      model: () => sequential([T], [embedding({ inputDim: V, outputDim: D, name: 'emb' }), layerNorm({ name: 'ln' }), flatten(), dense({ units: 3, name: 'out' })]),
      batch: B, x: ids, labels: y,
      loss(W) {
        const e = embeddingRef(ids, W['emb/embeddings'], D);
        const l = normRef('layer', e, B * T, D, EPS, W['ln/gamma'], W['ln/beta']).y;
        return softmaxXentRef(dense64(l, W, 'out', B, 3), y, B, 3).mean;
      },
    });
  }
  return out;
}

/** Central differences of a float64 loss in every weight: the float64 reference gradient. */
function fdGradient(loss: (W: W64) => number, W: W64, name: string): Float64Array {
  const w = W[name];
  return Float64Array.from(w, (v, i) => {
    const h = 1e-5 * Math.max(1, Math.abs(v));
    w[i] = v + h;
    const up = loss(W);
    w[i] = v - h;
    const down = loss(W);
    w[i] = v;
    return (up - down) / (2 * h);
  });
}

describe('normalization, embedding and gelu layers', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  before(async () => { ctx = await testContext(); });

  for (const c of cases()) {
    it(`${c.title}: parameter gradients through autodiff equal the float64 CPU model's`, async () => {
      const model = c.model();
      const rand = rng(7);
      const W: Record<string, Float32Array> = {};
      const made: GPUBuffer[] = [];
      const store = {
        get(name: string, shape: number[], _init: unknown, opts: { trainable?: boolean } = {}) {
          const n = shape.reduce((a, b) => a * b, 1);
          W[name] = opts.trainable === false ? new Float32Array(n).fill(name.endsWith('variance') ? 1 : 0)
            : Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 0.9 + (name.endsWith('gamma') ? 1 : 0));
          const b = ctx.upload(W[name], name);
          made.push(b);
          return b;
        },
      };
      const net = model.build(store, c.batch, true, 1);
      expect(net.x.dtype).to.equal(c.x instanceof Uint32Array ? 'u32' : 'f32');
      const stepCounter = createStepCounter(ctx, 0);
      const compiled = new CompiledGraph(ctx, net.graph, { loss: net.loss, gradientsOnly: true, stepCounter, keep: [net.loss] });
      try {
        await compiled.ready();
        for (const slot of compiled.plan.slots) ctx.poison(compiled.bufferOf(slot.tensors[0]));
        ctx.write(compiled.bufferOf(net.x), c.x);
        ctx.write(compiled.bufferOf(net.labels), c.labels);
        const enc = ctx.device.createCommandEncoder();
        compiled.encode(enc);
        ctx.device.queue.submit([enc.finish()]);
        await ctx.device.queue.onSubmittedWorkDone();
        ctx.throwIfFailed(c.title);
        const W64: W64 = Object.fromEntries(Object.entries(W).map(([k, v]) => [k, Float64Array.from(v)]));
        const cpuLoss = c.loss(W64);
        const gpuLoss = (await ctx.readF32(compiled.bufferOf(net.loss), 1))[0];
        expect(Math.abs(gpuLoss - cpuLoss) / cpuLoss, `loss ${gpuLoss} vs float64 ${cpuLoss}`).to.be.lessThan(1e-5);
        const params = net.graph.tensors.filter((t) => t.role === 'param');
        expect(params.map((p) => p.name).sort()).to.deep.equal(Object.keys(W).filter((k) => !k.includes('moving')).sort());
        let worst = 0;
        for (const p of params) {
          const d = compiled.gradientOf(p);
          const got = await ctx.readF32(compiled.bufferOf(d), d.size, d.offset);
          const ref = fdGradient(c.loss, W64, p.name);
          expect(ref.some((v) => Math.abs(v) > 1e-6), `reference gradient of ${p.name} is not zero`).to.equal(true);
          expectEachClose(got, ref, 1e-4, `d${p.name}`);
          worst = Math.max(worst, relError(got, ref));
        }
        console.log(`      loss ${cpuLoss.toFixed(6)}, worst gradient rel. error ${worst.toExponential(2)}`);
      } finally {
        compiled.destroy();
        for (const b of made) ctx.release(b);
        ctx.release(stepCounter);
      }
    });
  }

  it('batchNorm moves its running statistics on the GPU over 5 steps as the CPU does, and evaluation uses them', async () => {
    const B = 6, S = [4, 3, 3], C = 3, P = 4 * 3 * 3, momentum = 0.8;
    const model = sequential(S, [batchNorm({ name: 'bn', momentum }), flatten(), dense({ units: 3, activation: 'softmax', name: 'out' })], { name: 'bn model' });
    expect(model.summary()).to.contain('Non-trainable params: 6').and.to.contain('Trainable params: 117');
    const rand = rng(11);
    const count = 5 * B;
    const data = {
      count, labels: Uint8Array.from({ length: count }, () => Math.floor(rand() * 3)),
      images: Float32Array.from({ length: count * P }, (_, i) => 1 + (i % C) + 2 * rand()),
    };
    const trainer = await Trainer.create(ctx, { model, batch: B, seed: 3, optimizer: { kind: 'sgd', lr: 0.1 } });
    try {
      let mm: ArrayLike<number> = new Float64Array(C), mv: ArrayLike<number> = new Float64Array(C).fill(1);
      for (let k = 0; k < 5; k++) {
        const index = Uint32Array.from({ length: B }, (_, b) => k * B + b);
        trainer.writeBatch(data, index);
        trainer.step();
        // the layer sees the input itself: its batch statistics do not depend on the weights
        const stats = normRef('batch', data.images.subarray(k * B * P, (k + 1) * B * P), B * P / C, C, EPS);
        mm = runningUpdateRef(mm, stats.mean, momentum);
        mv = runningUpdateRef(mv, stats.variance, momentum);
      }
      await trainer.finish();
      const w = await trainer.store.read();
      expect(trainer.store.isTrainable('bn/moving_mean')).to.equal(false);
      expect(trainer.store.isTrainable('bn/gamma')).to.equal(true);
      expectEachClose(w['bn/moving_mean'].data, mm, 1e-5, 'moving mean after 5 steps');
      expectEachClose(w['bn/moving_variance'].data, mv, 1e-5, 'moving variance after 5 steps');
      // evaluation: the running statistics, not the batch's
      const n = 7;
      const examples = data.images.subarray(0, n * P);
      const { probabilities } = await trainer.predict(examples, n);
      const h = batchNormInferenceRef(examples, n * P / C, C, EPS, w['bn/moving_mean'].data, w['bn/moving_variance'].data, w['bn/gamma'].data, w['bn/beta'].data);
      const logits = matmulRef(h, w['out/kernel'].data, n, 3, P, { bias: w['out/bias'].data });
      const probs = Float64Array.from(logits, (_, i) => {
        const r = Math.floor(i / 3);
        const row = [0, 1, 2].map((k) => Math.exp(logits[r * 3 + k]));
        return row[i % 3] / row.reduce((a, b) => a + b, 0);
      });
      expectClose(probabilities, probs, 1e-5, 'evaluation probabilities');
    } finally {
      trainer.destroy();
    }
  });

  it('an Embedding model learns whether id 3 comes before id 7 in a sequence (≥ 0.95 held out)', async () => {
    const T = 8, V = 10;
    const rand = rng(5);
    const make = (count: number) => {
      const images = new Float32Array(count * T), labels = new Uint8Array(count);
      const others = [0, 1, 2, 4, 5, 6, 8, 9];
      for (let e = 0; e < count; e++) {
        const p3 = Math.floor(rand() * T);
        let p7 = Math.floor(rand() * (T - 1));
        if (p7 >= p3) p7++;
        for (let t = 0; t < T; t++) images[e * T + t] = t === p3 ? 3 : t === p7 ? 7 : others[Math.floor(rand() * others.length)];
        labels[e] = p3 < p7 ? 1 : 0;
      }
      return { count, images, labels };
    };
    const train = make(2000), test = make(500);
    const model = sequential([T], [embedding({ inputDim: V, outputDim: 8 }), flatten(), dense({ units: 32, activation: 'relu' }), dense({ units: 2 })], { name: 'order' });
    const B = 32;
    const trainer = await Trainer.create(ctx, { model, batch: B, seed: 9, optimizer: { kind: 'adam', lr: 0.01 } });
    try {
      const t0 = performance.now();
      const steps = 300;
      for (let k = 0; k < steps; k++) {
        trainer.writeBatch(train, Uint32Array.from({ length: B }, (_, b) => (k * B + b) % train.count));
        trainer.step();
      }
      const r = await trainer.evaluate(test);
      console.log(`      ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s: held-out accuracy ${r.accuracy.toFixed(3)}, loss ${r.loss.toFixed(4)}`);
      expect(r.accuracy).to.be.at.least(0.95);
      // ids outside the vocabulary, or not integers, are a data error naming the example
      const bad = { count: 2, images: new Float32Array(2 * T).fill(1), labels: new Uint8Array(2) };
      bad.images[T + 5] = 10;
      expect(() => trainer.writeBatch(bad, [0, 1, ...new Array(B - 2).fill(0)])).to.throw(RangeError,
        'Trainer.writeBatch: example 1 has id 10 at position 5, but "embedding" (Embedding) has input_dim 10 (ids 0-9)');
      bad.images[T + 5] = 2.5;
      expect(() => trainer.writeBatch(bad, new Array(B).fill(1))).to.throw(RangeError, 'example 1 has value 2.5, not an integer id, at position 5');
      await trainer.evaluate(bad).then(() => expect.fail('evaluate accepted a bad id'), (e: Error) => expect(e.message).to.contain('example 1 has value 2.5'));
    } finally {
      trainer.destroy();
    }
  });

  it('the spec and Keras JSON name them as Keras does, and modelToSpec round-trips them', () => {
    const m = sequential([8], [embedding({ inputDim: 20, outputDim: 4 }), layerNorm(), flatten(), dense({ units: 6, activation: 'gelu' }), batchNorm({ momentum: 0.9 }), dense({ units: 3 })]);
    const spec = modelToSpec(m);
    expect(spec.layers.map((l) => l.class_name)).to.deep.equal(['Embedding', 'LayerNormalization', 'Flatten', 'Dense', 'BatchNormalization', 'Dense']);
    expect(spec.layers.map((l) => l.config.name)).to.deep.equal(['embedding', 'layer_normalization', 'flatten', 'dense', 'batch_normalization', 'dense_1']);
    expect(modelFromSpec(JSON.parse(JSON.stringify(spec))).summary()).to.equal(m.summary());
    expect(m.summary()).to.contain('Total params: 331').and.to.contain('Non-trainable params: 12');
    const keras = {
      class_name: 'Sequential', config: {
        name: 'k', layers: [
          { class_name: 'InputLayer', config: { batch_input_shape: [null, 6, 6, 2] } },
          { class_name: 'Conv2D', config: { name: 'c', filters: 4, kernel_size: [3, 3], activation: 'linear' } },
          { class_name: 'BatchNormalization', config: { name: 'bn', axis: [3], momentum: 0.99, epsilon: 0.001, center: true, scale: true, trainable: true } },
          { class_name: 'Activation', config: { name: 'a', activation: 'gelu' } },
          { class_name: 'Flatten', config: { name: 'f' } },
          { class_name: 'Dense', config: { name: 'd', units: 2 } },
        ],
      },
    };
    expect(modelFromKeras(keras).summary()).to.contain('bn (BatchNormalization)');
    expect(() => modelFromSpec({ input_shape: [4, 3], layers: [{ class_name: 'BatchNormalization', config: { name: 'bn', axis: 1 } }, { class_name: 'Flatten', config: {} }, { class_name: 'Dense', config: { units: 2 } }] }))
      .to.throw(/layer 0 "bn" \(BatchNormalization\): axis 1 is not the last axis/);
    expect(() => sequential([5], [dense({ units: 5 }), embedding({ inputDim: 3, outputDim: 2 }), flatten(), dense({ units: 2 })]))
      .to.throw(/"embedding" \(Embedding\) reads "dense" \(Dense\): an Embedding reads integer ids/);
  });
});
