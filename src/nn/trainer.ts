import type { GpuContext } from '../gpu/context.js';
import type { LabelledImages } from '../data/dataset.js';
import { GpuError } from '../gpu/context.js';
import { PassTimer, median, type PassTiming } from '../gpu/profiler.js';
import { createStepCounter } from '../kernels/step.js';
import { CompiledGraph, type OptimizerConfig } from '../graph/recorder.js';
import { ParamStore } from './params.js';
import { fillBatch, IMAGE, type NetKind } from './nets.js';
import type { BuiltNet, Model } from './model.js';
import { builtinModel, type NetKnobs } from './models/builtin.js';
import { MetricsReadback } from './readback.js';
import { oversizedTensor } from './binding-sizes.js';
import { Evaluator, checkExamples, type EvalResult, type Examples, type Prediction } from './evaluator.js';
import { decodeStateFile, loadTrainerState, recordedTrainerOptions, saveTrainerState, type TrainerState } from './state.js';
import { modelFromSpec } from './spec.js';
import { batchIds } from './ids.js';
import { exportOnnx, type OnnxExportOptions } from '../onnx/export.js';
import { MatmulTuner, type MatmulTuningOptions } from '../kernels/matmul-tuner.js';

export type { EvalResult, Prediction, Examples };

export interface TrainerOptions extends NetKnobs {
  /** The model to train. */
  model?: Model;
  /** Shorthand for a built-in model (with the knobs hidden, layers, cell, keepProb): not with `model`. */
  net?: NetKind;
  seed: number;
  batch: number;
  optimizer: OptimizerConfig;
  /** Batch size of the evaluation graph (default 500). */
  evalBatch?: number;
  /**
   * Label smoothing ε in [0, 1) of the training loss (cross-entropy models): targets (1 − ε)·onehot + ε/C.
   * Evaluation reports the plain cross-entropy.
   */
  labelSmoothing?: number;
  /**
   * Tune the matrix products for this adapter (see MatmulTuner): when a graph is compiled (the
   * training graph in Trainer.create, the evaluation graph at the first evaluate or predict), each
   * product the tuner's store does not know yet has its tile variants timed and takes the fastest
   * (the results are the same). `true`: tune without a store (choices last for this call only);
   * a MatmulTuner: that one (its counters say what was timed). Default off: the default tiles.
   */
  tuning?: boolean | MatmulTuningOptions | MatmulTuner;
  /**
   * Encode each step's command buffer while the GPU runs the step before, so that encoding is off
   * the step's path (`step` then only submits). Default: on a GPU, not on a software adapter,
   * whose kernels run on the cores the host would encode on.
   */
  encodeAhead?: boolean;
}

/** The training loss and accuracy read back from the GPU. */
export interface TrainMetrics {
  /** Mean training loss over the steps since the last read. */
  loss: number;
  /** Training accuracy over those steps. */
  accuracy: number;
  steps: number;
}


/** GPU time of one op of the training step. */
export interface OpProfile {
  label: string;
  /** Median GPU time per step, ms. */
  ms: number;
  share: number;
  dispatches: number;
}

/** The model a Trainer's options ask for: `model`, or the built-in `net` with its knobs. */
function resolveModel(opts: TrainerOptions): Model {
  if (opts.model && opts.net) throw new GpuError(`Trainer.create: give either model or net (a built-in model), not both`);
  if (opts.model) {
    const knob = (['hidden', 'layers', 'cell', 'keepProb'] as const).find((k) => opts[k] !== undefined);
    if (knob) throw new GpuError(`Trainer.create: ${knob} is a knob of the built-in nets: with a model, set it in the model's layers`);
    return opts.model;
  }
  if (!opts.net) throw new GpuError(`Trainer.create: give a model ({ model: sequential(...) }) or a built-in net ({ net: 'mlp' })`);
  return builtinModel(opts.net, opts);
}

/** The tuner a Trainer's `tuning` option asks for, if any. */
function matmulTuner(ctx: GpuContext, tuning: TrainerOptions['tuning']): MatmulTuner | undefined {
  if (!tuning) return undefined;
  if (tuning instanceof MatmulTuner) {
    if (tuning.ctx !== ctx) throw new GpuError('Trainer.create: the tuning option\'s MatmulTuner was made for another GpuContext');
    return tuning;
  }
  return new MatmulTuner(ctx, tuning === true ? {} : tuning);
}

/**
 * A model compiled for training and evaluation on one device. A training step writes the batch
 * into fixed input buffers and submits ONE command buffer (forward, backward, optimizer, step
 * counter); loss and accuracy accumulate on the GPU and are read back only when asked.
 */
export class Trainer {
  readonly store: ParamStore;
  readonly net: BuiltNet;
  readonly graph: CompiledGraph;
  readonly stepCounter: GPUBuffer;
  private readonly readback: MetricsReadback;
  private readonly evaluator: Evaluator;
  private stepsSinceRead = 0;
  private readonly batchX: Float32Array;
  /** The batch as u32 ids (models whose input feeds an Embedding). */
  private readonly batchIds: Uint32Array | undefined;
  private readonly batchY: Uint32Array;
  /** One-hot labels [B, classes] (mean squared error models only). */
  private readonly batchT: Float32Array | undefined;
  private destroyed = false;
  /** The next step's dispatches, encoded while the GPU runs the last one (TrainerOptions.encodeAhead). */
  private nextStep: GPUCommandBuffer | undefined;
  /** Whether each step is encoded while the GPU runs the one before (TrainerOptions.encodeAhead, its default resolved). */
  readonly encodeAhead: boolean;

  private constructor(readonly ctx: GpuContext, readonly opts: TrainerOptions, readonly model: Model, tuner?: MatmulTuner) {
    this.store = new ParamStore(ctx, opts.seed);
    this.encodeAhead = opts.encodeAhead ?? !ctx.softwareAdapter;
    this.stepCounter = createStepCounter(ctx, 0);
    this.readback = new MetricsReadback(ctx);
    this.net = model.build(this.store, opts.batch, true, opts.seed, { labelSmoothing: opts.labelSmoothing });
    // Logits and predictions stay readable after a step (for embedding apps), at a few KB.
    this.graph = new CompiledGraph(ctx, this.net.graph, {
      loss: this.net.loss, optimizer: opts.optimizer, stepCounter: this.stepCounter, incrementStep: true,
      keep: [this.net.logits, this.net.predictions],
    });
    this.evaluator = new Evaluator(ctx, model, this.store, this.stepCounter, opts.seed, opts.evalBatch ?? 500, tuner);
    this.batchX = new Float32Array(this.net.x.size);
    this.batchIds = this.net.x.dtype === 'u32' ? new Uint32Array(this.net.x.size) : undefined;
    this.batchY = new Uint32Array(opts.batch);
    this.batchT = this.net.targets && new Float32Array(this.net.targets.size);
  }

  /** Compiles the model's training step on `ctx` (a bad option throws GpuError) and waits until its pipelines are ready. */
  static async create(ctx: GpuContext, opts: TrainerOptions): Promise<Trainer> {
    if (!Number.isInteger(opts.batch) || opts.batch < 1) throw new GpuError(`batch size must be a positive integer, got ${opts.batch}`);
    // Bad knobs are a clear error here, not a failure deep inside graph building.
    for (const k of ['hidden', 'layers', 'evalBatch'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new GpuError(`Trainer.create: ${k} must be a positive integer, got ${v}`);
    }
    if (opts.keepProb !== undefined && !(opts.keepProb > 0 && opts.keepProb <= 1)) throw new GpuError(`Trainer.create: keepProb must be in (0, 1], got ${opts.keepProb}`);
    const ls = opts.labelSmoothing;
    if (ls !== undefined && !(ls >= 0 && ls < 1)) throw new GpuError(`Trainer.create: labelSmoothing must be in [0, 1), got ${ls}`);
    const model = resolveModel(opts);
    ctx.throwIfLost(`compiling ${model.name}`);
    // Sizes the device cannot bind are refused from the shapes, before any buffer (or parameter) is made.
    const big = oversizedTensor(model, opts.batch, ctx.limits);
    if (big) {
      const fix = big.cause === 'batch' ? `use a batch of ${big.maxBatch} or less` : `make layer ${big.layer} smaller`;
      throw new GpuError(`Trainer.create: ${big.tensor} [${big.shape.join(', ')}] needs ${big.bytes} bytes, more than this adapter binds at once (${big.limitName} ${big.limit}): ${fix}`);
    }
    // A graph that fails to compile (e.g. a tensor too large to bind) leaves no buffers behind.
    const tuner = matmulTuner(ctx, opts.tuning);
    const t = ctx.releaseOnThrow(() => (tuner ? tuner.scope(() => new Trainer(ctx, opts, model, tuner)) : new Trainer(ctx, opts, model)));
    try {
      await t.graph.ready();
      // Timing at compile time, once per product: the step itself never changes.
      await tuner?.tunePending();
      ctx.throwIfFailed(`compiling ${model.name}`);
    } catch (e) {
      t.destroy();
      throw e;
    }
    return t;
  }

  get batch(): number {
    return this.opts.batch;
  }

  /** Input buffers of the training graph, for callers that fill them on the GPU themselves (targets: MSE models). */
  get inputBuffers(): { images: GPUBuffer; labels: GPUBuffer; targets?: GPUBuffer } {
    const t = this.net.targets;
    return { images: this.graph.bufferOf(this.net.x), labels: this.graph.bufferOf(this.net.labels), ...(t ? { targets: this.graph.bufferOf(t) } : {}) };
  }

  /** Output buffers of the training graph after a step: logits [B, classes] f32 and predictions [B] u32. */
  get outputBuffers(): { logits: GPUBuffer; predictions: GPUBuffer } {
    return { logits: this.graph.bufferOf(this.net.logits), predictions: this.graph.bufferOf(this.net.predictions) };
  }

  /** A parameter's GPU buffer by name (see `store.names`); the step updates it in place. */
  paramBuffer(name: string): GPUBuffer {
    return this.store.buffer(name);
  }

  /** The training step's dispatches as a command buffer (writes into the input buffers made before its submit still reach it). */
  private encodeGraph(): GPUCommandBuffer {
    const enc = this.ctx.device.createCommandEncoder({ label: 'training step' });
    this.graph.encode(enc);
    return enc.finish();
  }

  /**
   * Records one training step into the caller's command encoder (for apps that put the engine's
   * step into their own command buffer, e.g. after filling the input buffers on the GPU).
   */
  encodeStep(encoder: GPUCommandEncoder): void {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    this.ctx.throwIfLost(`training step ${this.readback.steps + 1}`);
    this.graph.encode(encoder);
    this.stepsSinceRead++;
    this.readback.noteSubmit();
  }

  /**
   * Copies examples `index[0..batch)` of `data` into the input buffers (in the model's layout). Each
   * example must have the model's input size (e.g. 28x28 images feed a [784] or [28, 28, 1] model).
   */
  writeBatch(data: LabelledImages, index: ArrayLike<number>): void {
    checkExamples(data, this.model, 'Trainer.writeBatch');
    fillBatch(this.net.layout, this.model.input.shape, data.images, index, this.batch, this.batchX, this.batch);
    const K = this.model.classes;
    for (let b = 0; b < this.batch; b++) {
      const label = data.labels[index[b]];
      // a class id past the outputs would make the loss read outside the logits
      if (!(label < K)) throw new RangeError(`Trainer.writeBatch: example ${index[b]} has label ${label}, but the model has ${K} classes (0-${K - 1})`);
      this.batchY[b] = label;
    }
    const x = this.batchIds ? batchIds(this.model, this.batchX, this.batchIds, index, this.batch, 'Trainer.writeBatch') : this.batchX;
    this.ctx.write(this.graph.bufferOf(this.net.x), x);
    this.ctx.write(this.graph.bufferOf(this.net.labels), this.batchY);
    if (this.batchT) {
      this.batchT.fill(0);
      for (let b = 0; b < this.batch; b++) this.batchT[b * K + this.batchY[b]] = 1;
      this.ctx.write(this.graph.bufferOf(this.net.targets!), this.batchT);
    }
  }

  /**
   * One training step on the batch already in the input buffers: one submit. With `readMetrics`,
   * the same submit also copies out (and resets) the loss and accuracy accumulated since the last
   * read, and the returned promise resolves with them. With `encodeAhead`, the step's command
   * buffer was encoded while the GPU ran the step before, and the next one is encoded once this
   * one is submitted.
   */
  step(readMetrics?: false): undefined;
  step(readMetrics: true): Promise<TrainMetrics>;
  step(readMetrics = false): Promise<TrainMetrics> | undefined {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    this.ctx.throwIfLost(`training step ${this.readback.steps + 1}`);
    const dispatches = this.nextStep ?? this.encodeGraph();
    this.nextStep = undefined;
    this.stepsSinceRead++;
    this.readback.noteSubmit();
    if (!readMetrics) {
      this.ctx.device.queue.submit([dispatches]);
      if (this.encodeAhead) this.nextStep = this.encodeGraph();
      return undefined;
    }
    // The read-back in a command buffer of its own, after the step's, in the same submit.
    const enc = this.ctx.device.createCommandEncoder({ label: 'metrics readback' });
    const staging = this.readback.copy(enc, this.graph.bufferOf(this.net.lossSum), this.graph.bufferOf(this.net.correct));
    this.ctx.device.queue.submit([dispatches, enc.finish()]);
    if (this.encodeAhead) this.nextStep = this.encodeGraph();
    const steps = this.stepsSinceRead;
    this.stepsSinceRead = 0;
    return this.readback.read(staging, this.readback.steps).then(({ lossSum, correct }) => ({
      loss: lossSum / steps, accuracy: correct / (steps * this.batch), steps,
    }));
  }

  /**
   * The whole training state as one safetensors file's bytes (docs/CHECKPOINTS.md): parameters,
   * optimizer state, the GPU step counter, the model spec and these options; `extra` adds the
   * caller's metadata (e.g. its loop position). Taken after every step submitted so far.
   */
  saveState(extra?: Record<string, string>): Promise<Uint8Array> {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    return saveTrainerState(this, extra);
  }

  /**
   * Overwrites this trainer's state with a saveState file (bytes, or already decoded) of the same
   * model and options; returns it decoded (its step and metadata). Throws StateError if it is
   * damaged or does not fit, before anything is written.
   */
  loadState(state: Uint8Array | TrainerState): TrainerState {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    const s = state instanceof Uint8Array ? decodeStateFile(state) : state;
    loadTrainerState(this, s);
    return s;
  }

  /**
   * A trainer built from a saveState file (its model spec and options; `opts` may set others,
   * e.g. evalBatch) with the file's state loaded: train on with trainLoop({ startStep: state.step }).
   */
  static async restoreState(ctx: GpuContext, bytes: Uint8Array, opts: Partial<Pick<TrainerOptions, 'evalBatch' | 'tuning'>> = {}): Promise<{ trainer: Trainer; state: TrainerState }> {
    const state = decodeStateFile(bytes);
    const trainer = await Trainer.create(ctx, { ...recordedTrainerOptions(state), ...opts, model: modelFromSpec(state.metadata.model_spec) });
    try {
      trainer.loadState(state);
    } catch (e) {
      trainer.destroy();
      throw e;
    }
    return { trainer, state };
  }

  /** Forward passes over a whole split in batches (dropout off); predictions and loss come back in one read. */
  evaluate(data: Examples, count = data.count): Promise<EvalResult> {
    return this.evaluator.evaluate(data, count);
  }

  /**
   * Class probabilities ([count, classes]: softmax of the logits) and predicted classes of `count`
   * examples of the model's input size (MNIST nets: 28x28 in [0, 1]), dropout off: e.g. one digit
   * drawn on a web page.
   */
  predict(examples: Float32Array, count?: number): Promise<Prediction> {
    return this.evaluator.predict(examples, count);
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

  /**
   * The model with its current parameters as an ONNX model (serialized bytes, for a file or a
   * download): input → logits and probabilities, dynamic batch (see src/onnx/export.ts). Async
   * because the parameters are read back from the GPU; the export itself is synchronous (`exportOnnx`).
   */
  async exportOnnx(opts?: OnnxExportOptions): Promise<Uint8Array> {
    if (this.destroyed) throw new GpuError('this Trainer was destroyed');
    return exportOnnx(this.model, await this.store.read(), opts);
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
    this.nextStep = undefined; // never submitted: dropping it is all it needs
    this.graph.destroy();
    this.evaluator.destroy();
    this.store.destroy();
    this.readback.destroy();
    this.ctx.release(this.stepCounter);
  }
}

export { IMAGE };

export type { LabelledImages };
