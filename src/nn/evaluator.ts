// Evaluation and prediction: the model's graph without dropout at a larger batch, sharing the
// training graph's parameters, run over a whole split in batches with ONE read-back at the end.
import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { BufferUsage } from '../gpu/flags.js';
import { CompiledGraph } from '../graph/recorder.js';
import type { MatmulTuner } from '../kernels/matmul-tuner.js';
import type { Tensor } from '../graph/tensor.js';
import type { ParamStore } from './params.js';
import type { BuiltNet, Model } from './model.js';
import { fillBatch } from './nets.js';
import { batchIds } from './ids.js';

/** Examples with class labels: `images` holds `count` examples of the model's input size, one after another. */
export interface Examples {
  count: number;
  images: Float32Array;
  labels: ArrayLike<number>;
}

/**
 * Throws a RangeError when `data`'s examples are not of the model's input size: a Dataset's
 * per-example `shape` must give the model input's element count, and the images must hold at
 * least `count` examples, a whole number of them (`count` may select the first of more). Also when
 * its `classes` are more than the model's outputs.
 */
export function checkExamples(data: Examples & { shape?: readonly number[]; classes?: number }, model: Model, who: string): void {
  const P = model.inputSize;
  const input = `the model's input shape [${model.inputShape.join(', ')}] (${P} values each)`;
  if (data.shape && data.shape.reduce((a, b) => a * b, 1) !== P) {
    throw new RangeError(`${who}: examples of shape [${data.shape.join(', ')}] do not fit ${input}: give data of that size or a model with that input`);
  }
  const n = data.images.length;
  if (n < data.count * P || n % P !== 0) {
    throw new RangeError(`${who}: ${n} values are not ${data.count} or more examples of ${input}: give data of that size or a model with that input`);
  }
  if (data.classes !== undefined && data.classes > model.classes) {
    throw new RangeError(`${who}: the data has ${data.classes} classes but the model's output has ${model.classes}: give the last layer ${data.classes} units`);
  }
}

/** Mean loss and accuracy over a data set, and the predicted class of each example. */
export interface EvalResult {
  accuracy: number;
  loss: number;
  /** Predicted class per example. */
  predictions: Uint8Array;
}

/** The predicted classes of examples, with their class probabilities. */
export interface Prediction {
  /** Predicted class per example. */
  predictions: Uint8Array;
  /** `[count, classes]`: the softmax of the logits (cross-entropy models) or the outputs themselves (MSE models). */
  probabilities: Float32Array;
  /** `[count, classes]`: the logits (cross-entropy: before the softmax; MSE: the outputs). */
  logits: Float32Array;
}

/**
 * Runs evaluate() and predict() calls one at a time (they share the evaluation graph's buffers,
 * and a page may call both while training); the graph is built on first use.
 */
export class Evaluator {
  private net: BuiltNet | undefined;
  private graph: CompiledGraph | undefined;
  private staging: GPUBuffer | undefined;
  /** The host arrays a batch is assembled in (the evaluation graph's batch is fixed once built). */
  private host: { x: Float32Array; ids: Uint32Array | undefined; y: Uint32Array; index: Uint32Array } | undefined;
  /** Settles when the calls in flight are done; undefined when none is. */
  private queue: Promise<void> | undefined;
  private destroyed = false;

  constructor(
    private readonly ctx: GpuContext,
    private readonly model: Model,
    private readonly store: ParamStore,
    private readonly stepCounter: GPUBuffer,
    private readonly seed: number,
    /** Largest evaluation batch (default 500). */
    private readonly maxBatch = 500,
    /** Tunes the evaluation graph's products when it is built (the training graph's tuner). */
    private readonly tuner?: MatmulTuner,
  ) {}

  /** Forward passes over a whole split in batches (dropout off); predictions and loss come back in one read. */
  async evaluate(data: Examples, count = data.count): Promise<EvalResult> {
    checkExamples(data, this.model, 'Trainer.evaluate');
    const K = this.model.classes;
    const mse = this.model.loss === 'mean_squared_error';
    const [preds, lossBytes] = await this.run(data, count, (net) => [net.predictions, net.perExample ?? net.logits], 'evaluation');
    const classes = new Uint32Array(preds);
    const losses = new Float32Array(lossBytes);
    const predictions = new Uint8Array(count);
    let correct = 0;
    let loss = 0;
    for (let i = 0; i < count; i++) {
      predictions[i] = classes[i];
      if (predictions[i] === data.labels[i]) correct++;
      if (!mse) {
        loss += losses[i];
        continue;
      }
      // MSE against the one-hot label, as the training graph computes it (mean over the classes)
      let s = 0;
      for (let k = 0; k < K; k++) {
        const d = losses[i * K + k] - (k === data.labels[i] ? 1 : 0);
        s += d * d;
      }
      loss += s / K;
    }
    return { accuracy: correct / count, loss: loss / count, predictions };
  }

  /** Class probabilities and predicted classes of `count` examples (dropout off). */
  async predict(examples: Float32Array, count = Math.floor(examples.length / this.model.inputSize)): Promise<Prediction> {
    const P = this.model.inputSize;
    if (!Number.isInteger(count) || count < 1 || examples.length < count * P) {
      throw new RangeError(`Trainer.predict: ${count} examples need ${count * P} floats (${P} each, the model's input shape [${this.model.inputShape.join(', ')}]), got ${examples.length}`);
    }
    const data = { count, images: examples, labels: new Uint8Array(count) };
    const [preds, logitBytes] = await this.run(data, count, (net) => [net.predictions, net.logits], 'prediction');
    const logits = new Float32Array(logitBytes);
    const K = this.model.classes;
    const probabilities = new Float32Array(count * K);
    if (this.model.loss === 'mean_squared_error') probabilities.set(logits.subarray(0, count * K));
    else {
      for (let i = 0; i < count; i++) {
        const row = logits.subarray(i * K, i * K + K);
        const max = Math.max(...row);
        let sum = 0;
        for (let k = 0; k < K; k++) sum += Math.exp(row[k] - max);
        for (let k = 0; k < K; k++) probabilities[i * K + k] = Math.exp(row[k] - max) / sum;
      }
    }
    return { predictions: Uint8Array.from(new Uint32Array(preds, 0, count)), probabilities, logits: logits.slice(0, count * K) };
  }

  /**
   * Runs the evaluation graph over `data` (see forwardAll) for `outputs` of it, one call at a time.
   * When none is in flight the call starts at once, so its work is submitted before the caller goes on.
   */
  private run(data: Examples, count: number, outputs: (net: BuiltNet) => Tensor[], what: string): Promise<ArrayBuffer[]> {
    const go = async () => {
      if (this.destroyed) throw new GpuError('this Trainer was destroyed');
      this.ctx.throwIfLost(what);
      if (!this.graph) await this.build();
      return this.forwardAll(data, count, outputs(this.net!), what);
    };
    const run = this.queue ? this.queue.then(go) : go();
    const tail = run.then(() => undefined, () => undefined);
    this.queue = tail;
    void tail.then(() => { if (this.queue === tail) this.queue = undefined; });
    return run;
  }

  /** The evaluation net at the largest batch (≤ maxBatch) whose tensors the adapter can bind. */
  private buildNet(): BuiltNet {
    const limit = this.ctx.limits.maxStorageBufferBindingSize;
    const want = this.maxBatch;
    for (const b of [want, 250, 200, 100, 50, 25, 10, 1]) {
      if (b > want) continue;
      const net = this.model.build(this.store, b, false, this.seed);
      if (net.graph.tensors.every((t) => t.bytes <= limit)) return net;
    }
    throw new GpuError(`the ${this.model.name} model does not fit this adapter's maxStorageBufferBindingSize (${limit}) even at batch 1`);
  }

  private async build(): Promise<void> {
    const ev = this.buildNet();
    const keep = [ev.predictions, ev.logits, ...(ev.perExample ? [ev.perExample] : [])];
    const compile = () => new CompiledGraph(this.ctx, ev.graph, { stepCounter: this.stepCounter, keep });
    const g = this.tuner ? this.tuner.scope(compile) : compile();
    this.net = ev;
    this.graph = g;
    await g.ready();
    // Timed once, before the first batch: the evaluation's products have their own (larger) batch.
    await this.tuner?.tunePending();
  }

  /**
   * Forward passes of the evaluation graph over examples 0..count-1 of `data`; after each batch the
   * `outputs` ([batch, ...] tensors of 32-bit values) are copied into one staging buffer, read back
   * once at the end: one ArrayBuffer per output, rows past `count` included.
   */
  private async forwardAll(data: Examples, count: number, outputs: Tensor[], what: string): Promise<ArrayBuffer[]> {
    const net = this.net!;
    const g = this.graph!;
    const eb = net.labels.shape[0];
    const batches = Math.ceil(count / eb);
    const sizes = outputs.map((t) => batches * t.bytes);
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    const bytes = sizes.reduce((a, b) => a + b, 0);
    if (!this.staging || this.staging.size < bytes) {
      if (this.staging) this.ctx.release(this.staging);
      this.staging = this.ctx.createBuffer(bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'evaluation readback');
    }
    const staging = this.staging;
    const shape = this.model.inputShape;
    // Made once per evaluator, not per call: an evaluation per epoch otherwise churns MBs of host memory.
    this.host ??= { x: new Float32Array(net.x.size), ids: net.x.dtype === 'u32' ? new Uint32Array(net.x.size) : undefined, y: new Uint32Array(eb), index: new Uint32Array(eb) };
    const { x, ids, y, index } = this.host;
    for (let k = 0; k < batches; k++) {
      const n = Math.min(eb, count - k * eb);
      for (let b = 0; b < eb; b++) index[b] = k * eb + Math.min(b, n - 1);
      fillBatch(net.layout, shape, data.images, index, n, x, eb);
      for (let b = 0; b < eb; b++) y[b] = data.labels[index[b]];
      this.ctx.write(g.bufferOf(net.x), ids ? batchIds(this.model, x, ids, index, n, what) : x);
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

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.graph?.destroy();
    if (this.staging) this.ctx.release(this.staging);
  }
}
