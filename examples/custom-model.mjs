// Your own model, defined in code with the layers API, trained in Node on a GPUDevice the app made.
// The data: 12x12 grey images of a bar, the class is its direction (0 horizontal, 1 vertical,
// 2 diagonal), at a random place, with noise. The model: a small CNN with one residual block.
// Run after `npm run build`:  node examples/custom-model.mjs
import { create } from 'webgpu';
import { GpuContext, Trainer, trainSteps, input, conv2d, maxPool2d, add, activation, globalAvgPool2d, dense, model, gentleWait } from '../dist/src/node.js';

process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Vulkan on a headless Linux box wants one
const gpu = create([]); // keep this referenced while the device is in use
const device = await (await gpu.requestAdapter()).requestDevice();

// ---- the data: a Dataset is { count, images, labels, shape, classes }
const S = 12;
let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
function bars(count) {
  const images = new Float32Array(count * S * S), labels = new Uint8Array(count);
  for (let e = 0; e < count; e++) {
    const cls = Math.floor(rand() * 3);
    labels[e] = cls;
    const at = 2 + Math.floor(rand() * (S - 4)), from = Math.floor(rand() * 4), len = 6 + Math.floor(rand() * 3);
    const img = images.subarray(e * S * S, (e + 1) * S * S);
    for (let i = 0; i < img.length; i++) img[i] = rand() * 0.3;
    for (let k = 0; k < len; k++) {
      const [y, x] = cls === 0 ? [at, from + k] : cls === 1 ? [from + k, at] : [from + k, Math.min(S - 1, from + k + (at % 3))];
      img[y * S + x] = 1;
    }
  }
  return { count, images, labels, shape: [S, S, 1], classes: 3 };
}
const train = bars(3000), test = bars(500);

// ---- the model: conv → residual block (two convs + add) → pool → global average pool → dense
const x = input([S, S, 1], { name: 'image' });
const stem = conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'stem' }).apply(x);
const h = conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'block_conv1' }).apply(stem);
const h2 = conv2d({ filters: 16, kernelSize: 3, padding: 'same', name: 'block_conv2' }).apply(h);
const res = activation({ activation: 'relu', name: 'block_relu' }).apply(add([stem, h2], { name: 'block_add' }));
const pooled = globalAvgPool2d({ name: 'pool' }).apply(maxPool2d({ name: 'down' }).apply(res));
const y = dense({ units: 3, activation: 'softmax', name: 'out' }).apply(pooled);
const m = model({ inputs: x, outputs: y, name: 'bars' });
console.log(m.summary());

// ---- training on the app's device
const ctx = GpuContext.fromDevice(device, { wait: gentleWait }); // gentleWait: dawn.node polls without spinning a core
const trainer = await Trainer.create(ctx, { model: m, batch: 50, seed: 1, optimizer: { kind: 'adam', lr: 0.005 } });
const before = await trainer.evaluate(test);
console.log(`before training: test accuracy ${before.accuracy.toFixed(3)} (loss ${before.loss.toFixed(3)})`);
await trainSteps(trainer, train, {
  steps: 300, readEvery: 50,
  onMetrics: (r) => console.log(`step ${String(r.step).padStart(3)}: loss ${r.loss.toFixed(4)}, batch accuracy ${r.accuracy.toFixed(3)}`),
});
const after = await trainer.evaluate(test);
console.log(`after 300 steps: test accuracy ${after.accuracy.toFixed(3)} (loss ${after.loss.toFixed(3)})`);
trainer.destroy();
ctx.destroy(); // the app's device is untouched: GpuContext.fromDevice never destroys a device it did not create
device.destroy();
