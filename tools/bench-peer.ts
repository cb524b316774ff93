// The peer of tools/bench.ts: the same nets as TensorFlow.js 4.22 tf.layers models, trained with
// model.trainOnBatch on the same MNIST batches, on one backend per process (webgpu on the same Dawn
// adapter, or wasm). Prints progress on stderr and one line per net on stdout:
//   PEER_RESULT {"net":"mlp","backend":"webgpu","stepMs":...}
// Usage: node dist/tools/bench-peer.js --backend webgpu|wasm [--nets mlp,cnn,rnn] [--steps N] [--seconds S] [--warmup N]
// Only the benchmark runs this file: nothing in the library or the tests imports TensorFlow.js.
import { ReadPacer } from '../src/gpu/pacer.js';
import { failUsage, toolFlags } from './tool-args.js';
import { gentleWait } from '../src/gpu/gentle-wait.js';
import { BENCH_NETS, NET_SETTINGS, PEER_RESULT, batchIndex, measureMore, median, threadCpuMs, trainSplit, type BenchNet, type PeerNetResult } from './bench-common.js';

type Tf = typeof import('@tensorflow/tfjs');

const flags = toolFlags(process.argv.slice(2), [
  { name: 'backend', kind: 'choice', choices: ['webgpu', 'wasm'], arg: 'webgpu|wasm', help: 'TensorFlow.js backend (default webgpu)' },
  { name: 'nets', kind: 'string', arg: 'mlp,cnn,rnn', help: 'nets to measure, comma-separated (default all three)' },
  { name: 'steps', kind: 'int', arg: 'N', help: 'steps per timed round (default 20)' },
  { name: 'warmup', kind: 'int', arg: 'N', help: 'untimed steps first (default 3)' },
  { name: 'seconds', kind: 'float', arg: 'S', help: 'at least this long per measurement (default 2)' },
  ...BENCH_NETS.map((n) => ({ name: `steps-${n}`, kind: 'int', arg: 'N', help: `steps per timed round for ${n} (default --steps)` }) as const),
], 'usage: node dist/tools/bench-peer.js [--backend webgpu|wasm] [--nets mlp,cnn,rnn] [--steps N] [--warmup N] [--seconds S] [--steps-NET N]');
const backend = (flags.get('backend') as string | undefined) ?? 'webgpu';
const nets = ((flags.get('nets') as string | undefined) ?? BENCH_NETS.join(',')).split(',') as BenchNet[];
for (const n of nets) {
  if (!BENCH_NETS.includes(n)) failUsage(`--nets ${JSON.stringify(n)} is not one of ${BENCH_NETS.join(', ')}: give --nets ${BENCH_NETS.join(',')} or a part of it`);
}
const steps = (flags.get('steps') as number | undefined) ?? 20;
const warmup = (flags.get('warmup') as number | undefined) ?? 3;
const seconds = (flags.get('seconds') as number | undefined) ?? 2;
const stepsFor = (net: BenchNet) => (flags.get(`steps-${net}`) as number | undefined) ?? steps;
const log = (s: string) => process.stderr.write(`[tfjs-${backend}] ${s}\n`);

/** Per-step counts of what tfjs-webgpu asks of the device (prototype wrappers, webgpu only). */
const counts = { submits: 0, dispatches: 0, bindGroups: 0, buffers: 0 };
/** Sleep-then-read pacing of buffer maps, the same as the engine's trainer paces its read-backs. */
const mapPacer = new ReadPacer();

async function setUpWebGpu(): Promise<string> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const gpu = create([]);
  (globalThis as unknown as { navigator: unknown }).navigator = { gpu };
  const g = globals as unknown as Record<string, { prototype: Record<string, (...a: unknown[]) => unknown> }>;
  const wrap = (cls: string, method: string, before: () => void) => {
    const proto = g[cls].prototype;
    const orig = proto[method];
    proto[method] = function (this: unknown, ...a: unknown[]) {
      before();
      return orig.apply(this, a);
    };
  };
  wrap('GPUQueue', 'submit', () => counts.submits++);
  wrap('GPUComputePassEncoder', 'dispatchWorkgroups', () => counts.dispatches++);
  wrap('GPUDevice', 'createBindGroup', () => counts.bindGroups++);
  wrap('GPUDevice', 'createBuffer', () => counts.buffers++);
  // dawn.node polls its event queue on the main thread while a map is pending, taking a core from
  // lavapipe's workers: sleep through most of the expected GPU time first, then poll gently (the
  // engine does the same: ReadPacer, gentleWait).
  const bufProto = g.GPUBuffer.prototype;
  const mapAsync = bufProto.mapAsync as (...a: unknown[]) => Promise<void>;
  bufProto.mapAsync = async function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    const woke = await mapPacer.sleep(t0);
    await gentleWait(() => mapAsync.apply(this, a));
    mapPacer.done(t0, 1, woke);
  };
  const adapter = await gpu.requestAdapter();
  const info = adapter?.info;
  return info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / ') : 'no adapter';
}

/** tfjs-backend-wasm has no Conv2DBackpropFilter: compute it from its own Pad, Transpose and Conv2D kernels. */
function registerWasmConvFilterGrad(tf: Tf): void {
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  type Info = import('@tensorflow/tfjs').TensorInfo;
  type Run = (a: { inputs: Record<string, Info>; backend: unknown; attrs: Record<string, unknown> }) => Info;
  const k = (name: string) => tf.getKernel(name, 'wasm')!.kernelFunc as unknown as Run;
  const [pad, transpose, conv] = [k('PadV2'), k('Transpose'), k('Conv2D')];
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: (({ inputs, backend: be, attrs }: { inputs: Record<string, Info>; backend: { disposeData(id: object): void }; attrs: Record<string, unknown> }) => {
      const { x, dy } = inputs;
      const { strides, pad: padding, dataFormat, dimRoundingMode, filterShape } = attrs as {
        strides: number | [number, number]; pad: 'same' | 'valid' | number; dataFormat: string; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number];
      };
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, padding, dimRoundingMode, false, 'channelsLast');
      if (dataFormat !== 'NHWC' || info.strideHeight !== 1 || info.strideWidth !== 1) {
        throw new Error(`Conv2DBackpropFilter shim (wasm): only NHWC with stride 1, got ${dataFormat} stride ${info.strideHeight}x${info.strideWidth}`);
      }
      // dW[kh,kw,ci,co] = sum_{b,oh,ow} xpad[b,oh+kh,ow+kw,ci] dy[b,oh,ow,co]: a valid conv of
      // xpad as [ci, Hp, Wp, b] with dy as the filter [oh, ow, b, co], giving [ci, kh, kw, co].
      const p = info.padInfo;
      const run = (f: Run, i: Record<string, Info>, a: Record<string, unknown>) => f({ inputs: i, backend: be, attrs: a });
      const xp = run(pad, { x }, { paddings: [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]], constantValue: 0 });
      const xt = run(transpose, { x: xp }, { perm: [3, 1, 2, 0] });
      const dyt = run(transpose, { x: dy }, { perm: [1, 2, 0, 3] });
      const g = run(conv, { x: xt, filter: dyt }, { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 1 });
      const out = run(transpose, { x: g }, { perm: [1, 2, 0, 3] });
      for (const t of [xp, xt, dyt, g]) be.disposeData(t.dataId);
      return out;
    }) as unknown as import('@tensorflow/tfjs').KernelFunc,
  });
}

/** The shim's filter gradient against tfjs-cpu's on a small SAME conv (max relative error). */
async function checkShim(tf: Tf): Promise<number> {
  const x = Float32Array.from({ length: 2 * 7 * 6 * 3 }, (_, i) => Math.sin(i * 0.37));
  const dy = Float32Array.from({ length: 2 * 7 * 6 * 4 }, (_, i) => Math.cos(i * 0.91));
  const grad = () =>
    tf.tidy(() => {
      const [xt, dyt] = [tf.tensor4d(x, [2, 7, 6, 3]), tf.tensor4d(dy, [2, 7, 6, 4])];
      const f = tf.ones([3, 5, 3, 4]) as import('@tensorflow/tfjs').Tensor4D;
      return tf.grad((w: import('@tensorflow/tfjs').Tensor) => tf.conv2d(xt, w as import('@tensorflow/tfjs').Tensor4D, 1, 'same').mul(dyt).sum())(f).dataSync().slice();
    });
  const got = grad();
  await tf.setBackend('cpu');
  const want = grad();
  await tf.setBackend('wasm');
  let err = 0;
  const scale = Math.max(...want.map(Math.abs));
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / scale);
  return err;
}

function buildModel(tf: Tf, net: BenchNet): import('@tensorflow/tfjs').LayersModel {
  const m = tf.sequential();
  if (net === 'mlp') {
    m.add(tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu' }));
    m.add(tf.layers.dense({ units: 10 }));
  } else if (net === 'cnn') {
    m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 5, padding: 'same', activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }));
    m.add(tf.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 1024, activation: 'relu' }));
    m.add(tf.layers.dropout({ rate: 0.5 }));
    m.add(tf.layers.dense({ units: 10 }));
  } else {
    m.add(tf.layers.lstm({ inputShape: [28, 28], units: 128 }));
    m.add(tf.layers.dense({ units: 10 }));
  }
  m.compile({
    optimizer: tf.train.adam(NET_SETTINGS[net].lr),
    loss: (yTrue: import('@tensorflow/tfjs').Tensor, yPred: import('@tensorflow/tfjs').Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
  });
  return m;
}

async function benchNet(tf: Tf, net: BenchNet, data: ReturnType<typeof trainSplit>): Promise<PeerNetResult> {
  const { batch } = NET_SETTINGS[net];
  const n = stepsFor(net);
  const model = buildModel(tf, net);
  const shape = net === 'mlp' ? [batch, 784] : net === 'cnn' ? [batch, 28, 28, 1] : [batch, 28, 28];
  const x = new Float32Array(batch * 784);
  const y = new Float32Array(batch * 10);
  const times: number[] = [];
  const per = { submits: [] as number[], dispatches: [] as number[], bindGroups: [] as number[], buffers: [] as number[] };
  let loss = NaN;
  // At least n measured steps, and more until they span `seconds` (as the engine's are measured).
  let measuredMs = 0;
  let cpuMs = 0;
  for (let s = 0; s < warmup || measureMore(s - warmup, measuredMs, n, seconds); s++) {
    const idx = batchIndex(s, batch, data.count);
    const t0 = performance.now();
    const cpu0 = threadCpuMs();
    for (const c of Object.keys(counts) as (keyof typeof counts)[]) counts[c] = 0;
    y.fill(0);
    for (let b = 0; b < batch; b++) {
      x.set(data.images.subarray(idx[b] * 784, idx[b] * 784 + 784), b * 784);
      y[b * 10 + data.labels[idx[b]]] = 1;
    }
    const xs = tf.tensor(x, shape);
    const ys = tf.tensor2d(y, [batch, 10]);
    // trainOnBatch awaits the loss's data() before it resolves: the step's GPU work is finished.
    const r = await model.trainOnBatch(xs, ys);
    loss = Array.isArray(r) ? r[0] : r;
    xs.dispose();
    ys.dispose();
    const ms = performance.now() - t0;
    if (s < warmup) {
      log(`${net} warm-up step ${s + 1}/${warmup}: ${ms.toFixed(1)} ms, loss ${loss.toFixed(4)}`);
      continue;
    }
    times.push(ms);
    measuredMs += ms;
    cpuMs += (threadCpuMs() ?? NaN) - (cpu0 ?? NaN);
    for (const c of Object.keys(counts) as (keyof typeof counts)[]) per[c].push(counts[c]);
  }
  const stepMs = median(times);
  model.dispose();
  tf.disposeVariables();
  const res: PeerNetResult = { net, backend, batch, steps: times.length, warmup, stepMs, examplesPerSec: (batch * 1000) / stepMs, finalLoss: loss };
  if (Number.isFinite(cpuMs)) {
    res.hostCpuMs = cpuMs / times.length;
    res.hostCpuShare = cpuMs / measuredMs;
  }
  if (backend === 'webgpu') {
    res.submits = median(per.submits);
    res.dispatches = median(per.dispatches);
    res.bindGroups = median(per.bindGroups);
    res.buffers = median(per.buffers);
  }
  if (backend === 'wasm' && net === 'cnn') res.note = 'Conv2DBackpropFilter by a shim (Pad + Transpose + Conv2D wasm kernels)';
  log(`${net}: ${stepMs.toFixed(1)} ms/step median of ${times.length}, ${res.examplesPerSec.toFixed(1)} examples/s, loss ${loss.toFixed(4)}`);
  return res;
}

let adapter = '';
if (backend === 'webgpu') adapter = await setUpWebGpu();
else if (backend !== 'wasm') throw new Error(`--backend must be webgpu or wasm, got ${backend}`);
const tf: Tf = await import('@tensorflow/tfjs');
if (backend === 'webgpu') await import('@tensorflow/tfjs-backend-webgpu');
else await import('@tensorflow/tfjs-backend-wasm');
if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
await tf.ready();
if (backend === 'wasm') {
  registerWasmConvFilterGrad(tf);
  log(`wasm SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}; Conv2DBackpropFilter shim max error vs cpu: ${(await checkShim(tf)).toExponential(2)}`);
}
log(`backend ${tf.getBackend()}${adapter ? `, adapter ${adapter}` : ''}, tfjs ${tf.version.tfjs}`);
const data = trainSplit();
for (const net of nets) {
  let res: PeerNetResult;
  try {
    res = await benchNet(tf, net, data);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log(`${net}: failed: ${msg}`);
    res = { net, backend, batch: NET_SETTINGS[net].batch, steps: 0, warmup, stepMs: NaN, examplesPerSec: NaN, finalLoss: NaN, error: msg.split('\n')[0] };
  }
  process.stdout.write(PEER_RESULT + JSON.stringify(res) + '\n');
}
process.exit(0);
