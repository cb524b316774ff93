// A host app creates the device, runs its own compute pass on it, trains with the
// engine on the same device (feeding the engine's inputs from its own GPUBuffers on the GPU), and
// after destroy() no buffer made by the engine remains, while the app's own resources still work.
import { expect } from 'chai';
import { create } from 'webgpu';
import { rng } from './support/cpu.js';
import { GpuContext } from '../src/gpu/context.js';
import { BufferUsage, MapMode } from '../src/gpu/flags.js';
import { Trainer } from '../src/nn/trainer.js';
import { hasSubgroupKernel, matmul } from '../src/kernels/matmul.js';
import { adamEpilogue, hasUpdateEpilogue } from '../src/kernels/optimizer.js';
import { hasLstmStepEpilogues } from '../src/kernels/recurrent.js';
import { createStepCounter } from '../src/kernels/step.js';

// The app's own kernel: 8-bit pixels (one per u32) to floats in [0, 1].
const NORMALIZE = /* wgsl */ `
@group(0) @binding(0) var<storage, read> raw: array<u32>;
@group(0) @binding(1) var<storage, read_write> images: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&images)) { images[id.x] = f32(raw[id.x]) / 255.0; }
}`;

async function readBack(device: GPUDevice, staging: GPUBuffer, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MapMode.READ, 0, bytes);
  const out = staging.getMappedRange(0, bytes).slice(0);
  staging.unmap();
  return out;
}

describe('embedding: the engine on a device the caller made', function () {
  this.timeout(120_000);
  // dawn.node tears its instance down when the GPU object is collected: keep it referenced to the end
  let gpu: GPU | undefined;
  let device: GPUDevice | undefined;
  after(() => {
    device?.destroy();
    device = undefined;
    gpu = undefined;
  });

  it('trains next to the caller\'s own compute work and leaves no buffer of its own behind', async () => {
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    gpu = create([]);
    const adapter = await gpu.requestAdapter();
    expect(adapter, 'a WebGPU adapter').to.not.equal(null);
    device = await adapter!.requestDevice({ label: 'host app device' });
    const dev = device;

    // ---- the app's own resources and compute pass
    const B = 12, P = 784;
    const rand = rng(42);
    const pixels = Uint32Array.from({ length: B * P }, () => Math.floor(rand() * 256));
    const labels = Uint32Array.from({ length: B }, (_, i) => i % 10);
    const mk = (size: number, usage: number, label: string) => dev.createBuffer({ size, usage, label });
    const raw = mk(B * P * 4, BufferUsage.STORAGE | BufferUsage.COPY_DST, 'app raw pixels');
    const images = mk(B * P * 4, BufferUsage.STORAGE | BufferUsage.COPY_SRC, 'app images');
    const labelBuf = mk(B * 4, BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, 'app labels');
    const staging = mk(B * P * 4, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'app readback');
    const appBuffers = [raw, images, labelBuf, staging];
    dev.queue.writeBuffer(raw, 0, pixels);
    dev.queue.writeBuffer(labelBuf, 0, labels);
    const module = dev.createShaderModule({ code: NORMALIZE, label: 'app normalize' });
    const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: 'app normalize' });
    const bindGroup = dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: raw } }, { binding: 1, resource: { buffer: images } }] });
    const normalize = (enc: GPUCommandEncoder) => {
      const pass = enc.beginComputePass({ label: 'app pass' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil((B * P) / 64));
      pass.end();
    };
    const checkImages = async (px: Uint32Array, what: string) => {
      const enc = dev.createCommandEncoder();
      normalize(enc);
      dev.queue.submit([enc.finish()]);
      const got = new Float32Array(await readBack(dev, staging, images, B * P * 4));
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - px[i] / 255));
      expect(worst, `${what}: the app's kernel output`).to.be.lessThan(1e-6);
    };
    await checkImages(pixels, 'before the engine');

    // ---- from here on, every buffer created on the device is the engine's (the app made its own above)
    const proto = Object.getPrototypeOf(dev) as { createBuffer: GPUDevice['createBuffer'] };
    const bufProto = Object.getPrototypeOf(raw) as { destroy: GPUBuffer['destroy'] };
    expect(Object.prototype.hasOwnProperty.call(proto, 'createBuffer'), 'createBuffer lives on GPUDevice.prototype').to.equal(true);
    expect(Object.prototype.hasOwnProperty.call(bufProto, 'destroy'), 'destroy lives on GPUBuffer.prototype').to.equal(true);
    const origCreate = proto.createBuffer;
    const origDestroy = bufProto.destroy;
    const made = new Map<GPUBuffer, string>();
    const destroyed = new Set<GPUBuffer>();
    proto.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor) {
      const b = origCreate.call(this, desc);
      made.set(b, desc.label ?? '');
      return b;
    };
    bufProto.destroy = function (this: GPUBuffer) {
      destroyed.add(this);
      return origDestroy.call(this);
    };
    let ctx: GpuContext | undefined;
    let trainer: Trainer | undefined;
    try {
      ctx = GpuContext.fromDevice(dev);
      expect(ctx.ownsDevice).to.equal(false);
      trainer = await Trainer.create(ctx, { net: 'mlp', hidden: 64, layers: 1, seed: 7, batch: B, optimizer: { kind: 'adam', lr: 0.01 } });
      const { images: xIn, labels: yIn } = trainer.inputBuffers;
      expect(xIn.size).to.be.at.least(B * P * 4);
      const predictions = async () => new Uint32Array(await readBack(dev, staging, trainer!.outputBuffers.predictions, B * 4));

      // one command buffer per step, all of it the app's encoder: its pass, its copies, the engine's step
      const steps = 40;
      let firstCorrect = -1;
      for (let s = 0; s < steps; s++) {
        const enc = dev.createCommandEncoder({ label: `app step ${s}` });
        normalize(enc);
        enc.copyBufferToBuffer(images, 0, xIn, 0, B * P * 4);
        enc.copyBufferToBuffer(labelBuf, 0, yIn, 0, B * 4);
        trainer.encodeStep(enc);
        dev.queue.submit([enc.finish()]);
        if (s === 0) firstCorrect = (await predictions()).filter((p, i) => p === labels[i]).length;
      }
      const last = await predictions();
      ctx.throwIfFailed('embedded training');
      const correct = last.filter((p, i) => p === labels[i]).length;
      // the predictions of step 1 are of the initial weights; after 40 steps the batch is learnt
      expect(firstCorrect, 'correct predictions after the first step').to.be.lessThan(B);
      expect(correct, `correct predictions after ${steps} steps on the app's batch (first step: ${firstCorrect})`).to.equal(B);
      expect(made.size, 'the engine made its buffers on the app\'s device').to.be.greaterThan(0);

      trainer.destroy();
      // what the trainer leaves is the context's own (a shared stand-in for unused bindings)
      const afterTrainer = [...made].filter(([b]) => !destroyed.has(b)).map(([, label]) => label);
      expect(afterTrainer, 'engine buffers alive after trainer.destroy()').to.satisfy((ls: string[]) => ls.every((l) => /^unused binding \d+$/.test(l)));
      expect(ctx.liveBuffers).to.equal(afterTrainer.length);
      ctx.destroy();
      const left = [...made].filter(([b]) => !destroyed.has(b)).map(([, label]) => label);
      expect(left, 'engine buffers not destroyed').to.deep.equal([]);
      console.log(`      the engine made ${made.size} buffers on the app's device and destroyed all of them; ${firstCorrect}/${B} → ${correct}/${B} correct`);
    } finally {
      proto.createBuffer = origCreate;
      bufProto.destroy = origDestroy;
    }
    for (const b of appBuffers) expect(destroyed.has(b), `the engine destroyed the app's ${b.label}`).to.equal(false);

    // ---- the app's device and buffers still work: run its kernel again on new pixels
    const pixels2 = Uint32Array.from({ length: B * P }, () => Math.floor(rand() * 256));
    dev.queue.writeBuffer(raw, 0, pixels2);
    await checkImages(pixels2, 'after the engine was destroyed');
    const err = await new Promise<GPUError | null>((resolve) => {
      dev.pushErrorScope('validation');
      const enc = dev.createCommandEncoder();
      normalize(enc);
      dev.queue.submit([enc.finish()]);
      void dev.popErrorScope().then(resolve);
    });
    expect(err, 'validation errors after the engine was destroyed').to.equal(null);
    for (const b of appBuffers) b.destroy();
  });

  it('on a device made with subgroups but the default limits, updates and LSTM cells stay out of the products, and the nets train', async () => {
    const ownGpu = create([]);
    const adapter = await ownGpu.requestAdapter();
    expect(adapter, 'a WebGPU adapter').to.not.equal(null);
    if (!adapter!.features.has('subgroups')) throw new Error(`adapter has no 'subgroups' feature: the subgroup kernel's epilogues cannot be tested here`);
    // As a host app would ask: the feature, and no limits beyond the defaults (8 storage buffers a stage).
    const dev = await adapter!.requestDevice({ requiredFeatures: ['subgroups'], label: 'host app device, default limits' });
    const ctx = GpuContext.fromDevice(dev);
    try {
      expect(ctx.limits.maxStorageBuffersPerShaderStage).to.equal(8);
      expect(hasSubgroupKernel(ctx), 'the subgroup kernel itself fits').to.equal(true);
      expect(hasUpdateEpilogue(ctx), 'an update in the weight-gradient product').to.equal(false);
      expect(hasLstmStepEpilogues(ctx), 'an LSTM cell in the recurrent product').to.equal(false);
      const b = () => ctx.storage(4 * 64);
      const bufs = { param: b(), m: b(), v: b(), step: createStepCounter(ctx) };
      const epilogue = adamEpilogue(ctx, { rows: 4, cols: 8, lr: 0.1 }, bufs);
      expect(() => matmul(ctx, { M: 4, N: 8, K: 3, transA: true, epilogue }, { a: b(), b: b(), c: bufs.param }))
        .to.throw(/optimizer_step epilogue binds \d+ storage buffers, and this device allows 8 \(ask requestDevice for requiredLimits\.maxStorageBuffersPerShaderStage ≥ \d+/);

      const rand = rng(5);
      const B = 6;
      const data = { count: B, images: Float32Array.from({ length: B * 784 }, () => rand()), labels: Uint8Array.from({ length: B }, (_, i) => i % 10) };
      for (const config of [{ net: 'mlp', hidden: 16, layers: 1 }, { net: 'rnn', hidden: 12, layers: 1, cell: 'lstm' }] as const) {
        const trainer = await Trainer.create(ctx, { ...config, seed: 3, batch: B, optimizer: { kind: 'adam', lr: 0.01 } });
        const losses: number[] = [];
        for (let s = 0; s < 3; s++) {
          trainer.writeBatch(data, [0, 1, 2, 3, 4, 5]);
          losses.push((await trainer.step(true)).loss);
        }
        expect(losses.every(Number.isFinite), `${config.net} losses ${losses.join(', ')}`).to.equal(true);
        expect(losses[2], `${config.net} learns the batch`).to.be.lessThan(losses[0]);
        trainer.destroy();
      }
    } finally {
      ctx.destroy();
      dev.destroy();
    }
    void ownGpu; // keep the GPU object alive until the device is destroyed
  });
});
