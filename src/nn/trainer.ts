import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { BufferUsage } from '../gpu/flags.js';
import { PassTimer, median, type PassTiming } from '../gpu/profiler.js';
import { ReadPacer } from '../gpu/pacer.js';
import { createStepCounter } from '../kernels/step.js';
import { CompiledGraph, type OptimizerConfig } from '../graph/recorder.js';
import type { Tensor } from '../graph/tensor.js';
import { ParamStore } from './params.js';
import { buildNet, fillBatch, IMAGE, type BuiltNet, type NetConfig } from './nets.js';

export interface TrainerOptions extends NetConfig {
  batch: number;
  optimizer: OptimizerConfig;
  /** Batch size of the evaluation graph (default 500). */
  evalBatch?: number;
}

export interface TrainMetrics {
  /** Mean training loss over the steps since the last read. */
  loss: number;
  /** Training accuracy over those steps. */
  accuracy: number;
  steps: number;
}

export interface EvalResult {
  accuracy: number;
  loss: number;
  /** Predicted class per example. */
  predictions: Uint8Array;
}

export interface Prediction {
  /** Predicted class per image. */
  predictions: Uint8Array;
  /** Softmax of the logits, [count, 10]. */
  probabilities: Float32Array;
}

/** Labelled images, as the data loader gives them: images [count, 784] in [0, 1], labels 0..9. */
export interface LabelledImages {
  count: number;
  images: Float32Array;
  labels: Uint8Array;
}

export interface OpProfile {
  label: string;
  /** Median GPU time per step, ms. */
  ms: number;
  share: number;
  dispatches: number;
}

/** A paced read's start of GPU work, steps covered and when its sleep ended (undefined: no sleep). */
interface Wait {
  since: number;
  units: number;
  woke: number | undefined;
}

/**
 * A net compiled for training and evaluation on one device. A training step writes the batch
 * into fixed input buffers and submits ONE command buffer (forward, backward, optimizer, step
 * counter); loss and accuracy accumulate on the GPU and are read back only when asked.
 */
export class Trainer {
  readonly store: ParamStore;
  readonly net: BuiltNet;
  readonly graph: CompiledGraph;
  readonly stepCounter: GPUBuffer;
  private evalNet: BuiltNet | undefined;
  private evalGraph: CompiledGraph | undefined;
  private readonly staging: GPUBuffer[] = [];
  private evalStaging: GPUBuffer | undefined;
  /** Settles when the evaluate()/predict() calls in flight are done; undefined when none is. */
  private evalQueue: Promise<void> | undefined;
  private stepsSinceRead = 0;
  /** Steps submitted so far, when each unfinished one was submitted, when the GPU was last seen
   *  finishing one, and its estimated busy time per step (for pacing read-backs). */
  private submitted = 0;
  private readonly submitTimes = new Map<number, number>();
  private lastDone: { step: number; time: number } | undefined;
  private readonly pacer = new ReadPacer();
  private readonly batchX: Float32Array;
  private readonly batchY: Uint32Array;
  private destroyed = false;

  private constructor(readonly ctx: GpuContext, readonly opts: TrainerOptions) {
    this.store = new ParamStore(ctx, opts.seed);
    this.stepCounter = createStepCounter(ctx, 0);
    this.net = buildNet(opts, this.store, opts.batch, true);
    // Logits and predictions stay readable after a step (for embedding apps), at a few KB.
    this.graph = new CompiledGraph(ctx, this.net.graph, {
      loss: this.net.loss, optimizer: opts.optimizer, stepCounter: this.stepCounter, incrementStep: true,
      keep: [this.net.logits, this.net.predictions],
    });
    this.batchX = new Float32Array(this.net.x.size);
    this.batchY = new Uint32Array(opts.batch);
  }

  static async create(ctx: GpuContext, opts: TrainerOptions): Promise<Trainer> {
    if (!Number.isInteger(opts.batch) || opts.batch < 1) throw new GpuError(`batch size must be a positive integer, got ${opts.batch}`);
    // Bad knobs are a clear error here, not a failure deep inside graph building.
    for (const k of ['hidden', 'layers', 'evalBatch'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new GpuError(`Trainer.create: ${k} must be a positive integer, got ${v}`);
    }
    if (opts.keepProb !== undefined && !(opts.keepProb > 0 && opts.keepProb <= 1)) throw new GpuError(`Trainer.create: keepProb must be in (0, 1], got ${opts.keepProb}`);
    ctx.throwIfLost(`compiling ${opts.net}`);
    // A graph that fails to compile (e.g. a tensor too large to bind) leaves no buffers behind.
    const t = ctx.releaseOnThrow(() => new Trainer(ctx, opts));
    try {
      await t.graph.ready();
      ctx.throwIfFailed(`compiling ${opts.net}`);
    } catch (e) {
      t.destroy();
      throw e;
    }
    return t;
  }

  get batch(): number {
    return this.opts.batch;
  }

  /** Input buffers of the training graph, for callers that fill them on the GPU themselves. */
  get inputBuffers(): { images: GPUBuffer; labels: GPUBuffer } {
    return { images: this.graph.bufferOf(this.net.x), labels: this.graph.bufferOf(this.net.labels) };
  }

  /** Output buffers of the training graph after a step: logits [B, 10] f32 and predictions [B] u32. */
  get outputBuffers(): { logits: GPUBuffer; predictions: GPUBuffer } {
    return { logits: this.graph.bufferOf(this.net.logits), predictions: this.graph.bufferOf(this.net.predictions) };
  }

  /** A parameter's GPU buffer by name (see `store.names`); the step updates it in place. */
  paramBuffer(name: string): GPUBuffer {
    return this.store.buffer(name);
  }

  /**
   * Records one training step into the caller's command encoder (for apps that put the engine's
   * step into their own command buffer, e.g. after filling the input buffers on the GPU).
   */
  encodeStep(encoder: GPUCommandEncoder): void {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    this.ctx.throwIfLost(`training step ${this.submitted + 1}`);
    this.graph.encode(encoder);
    this.stepsSinceRead++;
    this.noteSubmit();
  }

  /** Copies examples `index[0..batch)` of `data` into the input buffers (in the net's layout). */
  writeBatch(data: LabelledImages, index: ArrayLike<number>): void {
    fillBatch(this.net.layout, data.images, index, this.batch, this.batchX, this.batch);
    for (let b = 0; b < this.batch; b++) this.batchY[b] = data.labels[index[b]];
    this.ctx.write(this.inputBuffers.images, this.batchX);
    this.ctx.write(this.inputBuffers.labels, this.batchY);
  }

  /**
   * One training step on the batch already in the input buffers: one command buffer, one submit.
   * With `readMetrics`, the same command buffer also copies out (and resets) the loss and
   * accuracy accumulated since the last read, and the returned promise resolves with them.
   */
  step(readMetrics?: false): undefined;
  step(readMetrics: true): Promise<TrainMetrics>;
  step(readMetrics = false): Promise<TrainMetrics> | undefined {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    this.ctx.throwIfLost(`training step ${this.submitted + 1}`);
    const enc = this.ctx.device.createCommandEncoder();
    this.graph.encode(enc);
    this.stepsSinceRead++;
    this.noteSubmit();
    if (!readMetrics) {
      this.ctx.device.queue.submit([enc.finish()]);
      return undefined;
    }
    const staging = this.staging.pop() ?? this.ctx.createBuffer(16, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'metrics readback');
    const lossSum = this.graph.bufferOf(this.net.lossSum);
    const correct = this.graph.bufferOf(this.net.correct);
    enc.copyBufferToBuffer(lossSum, 0, staging, 0, 4);
    enc.copyBufferToBuffer(correct, 0, staging, 4, 4);
    enc.clearBuffer(lossSum);
    enc.clearBuffer(correct);
    this.ctx.device.queue.submit([enc.finish()]);
    const steps = this.stepsSinceRead;
    this.stepsSinceRead = 0;
    const step = this.submitted;
    return (async () => {
      // dawn.node polls its event queue on the main thread while a mapAsync is pending, taking
      // CPU from a software adapter's worker threads: sleep until the step is expected to be done.
      const wait = await this.sleepUntilDone(step);
      try {
        await this.ctx.mapRead(staging, 0, 8, `training step ${step}`);
      } catch (e) {
        this.ctx.release(staging); // not back in the pool: nothing else would free it
        throw e;
      }
      const raw = staging.getMappedRange(0, 8).slice(0);
      staging.unmap();
      this.staging.push(staging);
      this.ctx.throwIfFailed('training step');
      this.noteDone(step, wait);
      return { loss: new Float32Array(raw, 0, 1)[0] / steps, accuracy: new Uint32Array(raw, 4, 1)[0] / (steps * this.batch), steps };
    })();
  }

  /** The evaluation net at the largest batch (≤ evalBatch, default 500) whose tensors the adapter can bind. */
  private buildEvalNet(): BuiltNet {
    const limit = this.ctx.limits.maxStorageBufferBindingSize;
    const want = this.opts.evalBatch ?? 500;
    for (const b of [want, 250, 200, 100, 50, 25, 10, 1]) {
      if (b > want) continue;
      const net = buildNet(this.opts, this.store, b, false);
      if (net.graph.tensors.every((t) => t.bytes <= limit)) return net;
    }
    throw new GpuError(`the ${this.opts.net} net does not fit this adapter's maxStorageBufferBindingSize (${limit}) even at batch 1`);
  }

  /**
   * When the GPU started on the steps after the last one seen done: the later of that one's
   * completion and the next one's submit (the GPU idles in between when the host waits).
   */
  private busySince(): number | undefined {
    if (!this.lastDone) return undefined;
    const submit = this.submitTimes.get(this.lastDone.step + 1);
    return submit === undefined ? undefined : Math.max(submit, this.lastDone.time);
  }

  private noteSubmit(): void {
    this.submitted++;
    this.submitTimes.set(this.submitted, performance.now());
    // An app that encodes steps and never reads metrics back must not grow this without bound.
    if (this.submitTimes.size > 1024) this.submitTimes.delete(this.submitTimes.keys().next().value!);
  }

  /** Records that the GPU finished `step` (seen just now), for pacing; `wait` is what sleepUntilDone returned. */
  private noteDone(step: number, wait: Wait | undefined): void {
    const since = wait?.since ?? this.busySince();
    if (since !== undefined && this.lastDone && step > this.lastDone.step) {
      this.pacer.done(since, wait?.units ?? step - this.lastDone.step, wait?.woke);
    }
    if (!this.lastDone || step > this.lastDone.step) this.lastDone = { step, time: performance.now() };
    for (const k of this.submitTimes.keys()) if (k <= step) this.submitTimes.delete(k);
  }

  /** Sleeps until the GPU is expected to be nearly done with `step` (see ReadPacer). */
  private async sleepUntilDone(step: number): Promise<Wait | undefined> {
    const since = this.busySince();
    if (since === undefined) return undefined;
    const units = step - this.lastDone!.step;
    return { since, units, woke: await this.pacer.sleep(since, units) };
  }

  /** Forward passes over a whole split in batches (dropout off); predictions and loss come back in one read. */
  async evaluate(data: LabelledImages, count = data.count): Promise<EvalResult> {
    const [preds, lossBytes] = await this.runEval(data, count, (net) => [net.predictions, net.loss.producer!.outputs[2]], 'evaluation');
    const classes = new Uint32Array(preds);
    const losses = new Float32Array(lossBytes);
    const predictions = new Uint8Array(count);
    let correct = 0;
    let loss = 0;
    for (let i = 0; i < count; i++) {
      predictions[i] = classes[i];
      if (predictions[i] === data.labels[i]) correct++;
      loss += losses[i];
    }
    return { accuracy: correct / count, loss: loss / count, predictions };
  }

  /**
   * Class probabilities (softmax of the logits, [count, 10]) and predicted classes of `count`
   * images [count, 784] in [0, 1], dropout off: e.g. one digit drawn on a web page.
   */
  async predict(images: Float32Array, count = Math.floor(images.length / (IMAGE.rows * IMAGE.cols))): Promise<Prediction> {
    const P = IMAGE.rows * IMAGE.cols;
    if (!Number.isInteger(count) || count < 1 || images.length < count * P) {
      throw new RangeError(`Trainer.predict: ${count} images need ${count * P} floats (28x28 each, in [0, 1]), got ${images.length}`);
    }
    const data = { count, images, labels: new Uint8Array(count) };
    const [preds, logitBytes] = await this.runEval(data, count, (net) => [net.predictions, net.logits], 'prediction');
    const logits = new Float32Array(logitBytes);
    const K = IMAGE.classes;
    const probabilities = new Float32Array(count * K);
    for (let i = 0; i < count; i++) {
      const row = logits.subarray(i * K, i * K + K);
      const max = Math.max(...row);
      let sum = 0;
      for (let k = 0; k < K; k++) sum += Math.exp(row[k] - max);
      for (let k = 0; k < K; k++) probabilities[i * K + k] = Math.exp(row[k] - max) / sum;
    }
    return { predictions: Uint8Array.from(new Uint32Array(preds, 0, count)), probabilities };
  }

  /**
   * Runs the evaluation graph over `data` (see forwardAll) for `outputs` of it, one call at a time:
   * evaluate() and predict() share its buffers, and a page may call both while training. When none
   * is in flight the call starts at once, so its work is submitted before the caller goes on.
   */
  private runEval(data: LabelledImages, count: number, outputs: (net: BuiltNet) => Tensor[], what: string): Promise<ArrayBuffer[]> {
    const go = async () => {
      if (this.destroyed) throw new GpuError('this Trainer was destroyed');
      this.ctx.throwIfLost(what);
      if (!this.evalGraph) await this.buildEvalGraph();
      return this.forwardAll(data, count, outputs(this.evalNet!), what);
    };
    const run = this.evalQueue ? this.evalQueue.then(go) : go();
    const tail = run.then(() => undefined, () => undefined);
    this.evalQueue = tail;
    void tail.then(() => { if (this.evalQueue === tail) this.evalQueue = undefined; });
    return run;
  }

  /** The evaluation graph, sharing the training graph's parameters (built on first use). */
  private async buildEvalGraph(): Promise<void> {
    const ev = this.buildEvalNet();
    const g = new CompiledGraph(this.ctx, ev.graph, { stepCounter: this.stepCounter, keep: [ev.predictions, ev.loss.producer!.outputs[2], ev.logits] });
    this.evalNet = ev;
    this.evalGraph = g;
    await g.ready();
  }

  /**
   * Forward passes of the evaluation graph over examples 0..count-1 of `data`; after each batch the
   * `outputs` ([batch, ...] tensors of 32-bit values) are copied into one staging buffer, read back
   * once at the end: one ArrayBuffer per output, rows past `count` included.
   */
  private async forwardAll(data: LabelledImages, count: number, outputs: Tensor[], what: string): Promise<ArrayBuffer[]> {
    const net = this.evalNet!;
    const g = this.evalGraph!;
    const eb = net.labels.shape[0];
    const batches = Math.ceil(count / eb);
    const sizes = outputs.map((t) => batches * t.bytes);
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const bytes = sizes.reduce((a, b) => a + b, 0);
    if (!this.evalStaging || this.evalStaging.size < bytes) {
      if (this.evalStaging) this.ctx.release(this.evalStaging);
      this.evalStaging = this.ctx.createBuffer(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'evaluation readback');
    }
    const staging = this.evalStaging;
    const x = new Float32Array(net.x.size);
    const y = new Uint32Array(eb);
    const index = new Uint32Array(eb);
    for (let k = 0; k < batches; k++) {
      const n = Math.min(eb, count - k * eb);
      for (let b = 0; b < eb; b++) index[b] = k * eb + Math.min(b, n - 1);
      fillBatch(net.layout, data.images, index, n, x, eb);
      for (let b = 0; b < eb; b++) y[b] = data.labels[index[b]];
      this.ctx.write(g.bufferOf(net.x), x);
      this.ctx.write(g.bufferOf(net.labels), y);
      const enc = this.ctx.device.createCommandEncoder();
      g.encode(enc);
      outputs.forEach((t, i) => enc.copyBufferToBuffer(g.bufferOf(t), 0, staging, starts[i] + k * t.bytes, t.bytes));
      this.ctx.device.queue.submit([enc.finish()]);
    }
    await this.ctx.mapRead(staging, 0, bytes, what);
    const all = staging.getMappedRange(0, bytes);
    const out = sizes.map((size, i) => all.slice(starts[i], starts[i] + size));
    staging.unmap();
    this.ctx.throwIfFailed(what);
    return out;
  }

  /**
   * Per-op GPU time of the training step from timestamp queries (one timed pass per op), median
   * over `steps` steps after `warmup`, on the batch in the input buffers.
   */
  async profile(steps = 20, warmup = 3): Promise<{ ops: OpProfile[]; stepMs: number }> {
    if (!this.ctx.hasTimestamps) throw new GpuError(`the adapter (${this.ctx.adapterDescription}) has no 'timestamp-query' feature: no GPU profile can be taken`);
    const timer = new PassTimer(this.ctx, this.graph.ops.length);
    const per: number[][] = this.graph.ops.map(() => []);
    const totals: number[] = [];
    try {
      for (let s = 0; s < warmup + steps; s++) {
        timer.reset();
        const enc = this.ctx.device.createCommandEncoder();
        this.graph.encode(enc, timer);
        timer.resolve(enc);
        this.ctx.device.queue.submit([enc.finish()]);
        const t: PassTiming[] = await timer.read();
        if (s < warmup) continue;
        t.forEach((x, i) => per[i].push(x.ns / 1e6));
        totals.push(t.reduce((a, x) => a + x.ns, 0) / 1e6);
      }
    } finally {
      timer.destroy();
    }
    const stepMs = median(totals);
    const ops = this.graph.ops.map((o, i) => ({ label: o.label, ms: median(per[i]), share: median(per[i]) / stepMs, dispatches: o.dispatches.length }));
    ops.sort((a, b) => b.ms - a.ms);
    return { ops, stepMs };
  }

  /** Waits for all submitted GPU work. */
  async finish(): Promise<void> {
    await this.ctx.wait(() => this.ctx.device.queue.onSubmittedWorkDone());
    this.ctx.throwIfFailed('training');
  }

  /** Releases every GPU buffer this trainer made (graphs, parameters, staging). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.graph.destroy();
    this.evalGraph?.destroy();
    this.store.destroy();
    for (const b of this.staging) this.ctx.release(b);
    if (this.evalStaging) this.ctx.release(this.evalStaging);
    this.ctx.release(this.stepCounter);
  }
}

export { IMAGE };
