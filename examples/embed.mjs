// Embedding the engine in a WebGPU app: the app owns the device, draws its training images with its
// own compute kernel, and trains an MLP on them without a CPU round trip for the data.
// Run after `npm run build`:  node examples/embed.mjs   (in a browser: navigator.gpu instead of create())
import { create } from 'webgpu';
import { GpuContext, Trainer, BufferUsage, MapMode, gentleWait } from '../dist/src/node.js';

process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Vulkan on a headless Linux box wants one
const gpu = create([]); // keep this referenced while the device is in use
const device = await (await gpu.requestAdapter()).requestDevice();

// The app's own kernel: image b of the batch is a bright band of 3 rows at row 3·label[b], plus noise.
const B = 32, P = 784;
const module = device.createShaderModule({ code: /* wgsl */ `
  @group(0) @binding(0) var<storage, read> labels: array<u32>;
  @group(0) @binding(1) var<storage, read_write> images: array<f32>;
  @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
    if (id.x >= arrayLength(&images)) { return; }
    let b = id.x / 784u; let row = (id.x % 784u) / 28u;
    let noise = f32((id.x * 2654435761u + labels[b] * 40503u) >> 24u) / 1024.0;
    images[id.x] = select(0.0, 1.0, row / 3u == labels[b]) + noise;
  }` });
const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
const labelBuf = device.createBuffer({ size: B * 4, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
const imageBuf = device.createBuffer({ size: B * P * 4, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC });
const readBuf = device.createBuffer({ size: B * 4, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [
  { binding: 0, resource: { buffer: labelBuf } }, { binding: 1, resource: { buffer: imageBuf } }] });

// The engine on the app's device: GpuContext.fromDevice never destroys a device it did not create.
const ctx = GpuContext.fromDevice(device, { wait: gentleWait }); // gentleWait: dawn.node polls for results without spinning a core
const trainer = await Trainer.create(ctx, { net: 'mlp', hidden: 64, seed: 1, batch: B, optimizer: { kind: 'adam', lr: 0.01 } });
const { images: engineImages, labels: engineLabels } = trainer.inputBuffers; // fixed GPU input buffers

const labels = new Uint32Array(B);
const report = new Set([1, 5, 60]); // steps whose predictions the app reads back
for (let step = 1; step <= 60; step++) {
  for (let i = 0; i < B; i++) labels[i] = Math.floor(Math.random() * 10);
  device.queue.writeBuffer(labelBuf, 0, labels);
  // One command buffer: the app's pass draws the batch, copies feed the engine, the engine trains.
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil((B * P) / 64));
  pass.end();
  enc.copyBufferToBuffer(imageBuf, 0, engineImages, 0, B * P * 4);
  enc.copyBufferToBuffer(labelBuf, 0, engineLabels, 0, B * 4);
  trainer.encodeStep(enc); // forward, backward and Adam update, recorded into the app's encoder
  if (report.has(step)) enc.copyBufferToBuffer(trainer.outputBuffers.predictions, 0, readBuf, 0, B * 4);
  device.queue.submit([enc.finish()]);
  if (report.has(step)) { // predictions [B] u32 of this step's forward pass (before its update)
    await readBuf.mapAsync(MapMode.READ);
    const pred = new Uint32Array(readBuf.getMappedRange().slice(0));
    readBuf.unmap();
    console.log(`step ${step}: ${pred.filter((p, i) => p === labels[i]).length}/${B} of the batch predicted right`);
  }
}
// Weights stay on the GPU too: trainer.paramBuffer('mlp/w1') is a GPUBuffer the app can bind.
trainer.destroy(); // releases every buffer the engine made ...
ctx.destroy();     // ... and the context's own; the app's device and buffers are untouched
for (const b of [labelBuf, imageBuf, readBuf]) b.destroy();
device.destroy();
