// A model: layers wired from one input to one output (a chain from `sequential`, or any graph
// from the functional API), a loss, and what it takes to build its training and evaluation
// graphs for a batch size. Layers are built in one fixed topological order (depth first from the
// output, inputs in order), so the same model always gives the same graph: the same parameter
// names (the ParamStore seeds each parameter's values by name) and the same op order (dropout
// streams are node indices).
import { Graph } from '../graph/graph.js';
import type { Tensor } from '../graph/tensor.js';
import type { ParamStore } from './params.js';
import {
  Dense, Dropout, Flatten, InputLayer, Layer, ModelSpecError, Recurrent, Reshape, SymbolicTensor, shapeText, type BuildEnv,
} from './layers.js';
import { Embedding } from './norm-layers.js';

/** Sparse softmax cross-entropy on logits (labels are class ids), or mean squared error against one-hot labels. */
export type LossName = 'sparse_categorical_crossentropy' | 'mean_squared_error';
export const LOSSES: readonly LossName[] = ['sparse_categorical_crossentropy', 'mean_squared_error'];

/** How a batch is laid out in the input tensor: [B, ...shape], or time-major [T, B, features] for a recurrent model. */
export type InputLayout = 'rows' | 'time-major';

/** Options of a model: its name and loss. */
export interface ModelOptions {
  name?: string;
  /** Default: sparse_categorical_crossentropy (aliases: 'sparse_categorical_crossentropy', 'mse'). */
  loss?: LossName | 'mse';
}

/** A model's graph for one batch size, training or evaluation. */
export interface BuiltNet {
  graph: Graph;
  /** The input batch in the model's layout: [B, ...inputShape] ('rows') or [T, B, ...rest] ('time-major'). */
  x: Tensor;
  layout: InputLayout;
  /** u32 [B] class ids. */
  labels: Tensor;
  /** f32 [B, classes]: the one-hot labels (mean squared error only). */
  targets?: Tensor;
  /** `[B, classes]`: logits (cross-entropy: before the folded softmax) or the outputs themselves (MSE). */
  logits: Tensor;
  loss: Tensor;
  lossSum: Tensor;
  /** f32 [B]: each example's loss (cross-entropy only; for MSE evaluation computes it from the outputs). */
  perExample?: Tensor;
  predictions: Tensor;
  correct: Tensor;
}

/** One emission step: a layer, or a stack of recurrent layers (with the Dropout layers between them). */
type Step = { layer: Layer } | { stack: Recurrent[]; gaps: Dropout[]; keepProb: number; seed: number | undefined };

const KERAS_BASE_NAMES: Record<string, string> = {
  InputLayer: 'input', Dense: 'dense', Conv2D: 'conv2d', MaxPooling2D: 'max_pooling2d', AveragePooling2D: 'average_pooling2d',
  GlobalAveragePooling2D: 'global_average_pooling2d', Flatten: 'flatten', Reshape: 'reshape', Dropout: 'dropout',
  Activation: 'activation', Add: 'add', Concatenate: 'concatenate', LSTM: 'lstm', GRU: 'gru', SimpleRNN: 'simple_rnn',
  BatchNormalization: 'batch_normalization', LayerNormalization: 'layer_normalization', Embedding: 'embedding',
};

/** Names unnamed layers as Keras does (dense, dense_1, ...); explicit names must be unique. */
export function nameLayers(input: InputLayer, layers: Layer[]): void {
  const taken = new Set<string>();
  if (input.name !== undefined) taken.add(input.name);
  layers.forEach((l, i) => {
    if (l.name === undefined) return;
    if (taken.has(l.name)) throw new ModelSpecError(`layer ${i} "${l.name}" (${l.className}): the name "${l.name}" is used twice: give each layer its own name`);
    taken.add(l.name);
  });
  for (const l of [input, ...layers]) {
    if (l.name !== undefined) continue;
    const base = KERAS_BASE_NAMES[l.className] ?? l.className.toLowerCase();
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    l.name = name;
  }
}

/** A graph of layers from an input to one output, with a loss: what a Trainer trains (Keras Model). */
export class Model {
  readonly name: string;
  readonly loss: LossName;
  readonly input: InputLayer;
  /** The layers after the input, in build order. */
  readonly layers: Layer[];
  readonly outputLayer: Layer;
  readonly layout: InputLayout;
  /** 'u32' when the input holds integer ids (it feeds Embedding layers), else 'f32'. */
  readonly inputDType: 'f32' | 'u32';
  private readonly steps: Step[];

  constructor(opts: { inputs: SymbolicTensor | SymbolicTensor[]; outputs: SymbolicTensor | SymbolicTensor[] } & ModelOptions) {
    const inputs = Array.isArray(opts.inputs) ? opts.inputs : [opts.inputs];
    const outputs = Array.isArray(opts.outputs) ? opts.outputs : [opts.outputs];
    if (inputs.length !== 1 || !(inputs[0].layer instanceof InputLayer)) throw new ModelSpecError(`a model has exactly one input made by input(shape), got ${inputs.length}: the trainer feeds one input`);
    if (outputs.length !== 1) throw new ModelSpecError(`a model has exactly one output (the class scores), got ${outputs.length}`);
    this.name = opts.name ?? 'model';
    const loss = opts.loss ?? 'sparse_categorical_crossentropy';
    this.loss = loss === 'mse' ? 'mean_squared_error' : loss;
    if (!LOSSES.includes(this.loss)) throw new ModelSpecError(`loss ${JSON.stringify(opts.loss)} is not supported: use sparse_categorical_crossentropy or mean_squared_error`);
    this.input = inputs[0].layer as InputLayer;
    this.outputLayer = outputs[0].layer;

    // Depth first from the output, inputs in order: a topological order fixed by the model's structure.
    const order: Layer[] = [];
    const seen = new Set<Layer>();
    const visit = (l: Layer): void => {
      if (seen.has(l)) return;
      seen.add(l);
      for (const t of l.inbound) visit(t.layer);
      order.push(l);
    };
    visit(this.outputLayer);
    const strayInput = order.find((l) => l instanceof InputLayer && l !== this.input);
    if (strayInput) throw new ModelSpecError(`the output depends on another input ${strayInput.describe()}: a model has one input`);
    if (!seen.has(this.input)) throw new ModelSpecError('the output does not depend on the model\'s input: build the output from input(shape)');
    this.layers = order.filter((l) => l !== this.input);
    nameLayers(this.input, this.layers);
    const consumers = new Map<Layer, Layer[]>();
    for (const l of this.layers) for (const t of l.inbound) consumers.set(t.layer, [...(consumers.get(t.layer) ?? []), l]);
    this.layout = this.checkSequences(consumers);
    this.inputDType = this.checkIds(consumers);
    this.checkOutput();
    this.steps = this.plan(consumers);
  }

  private who(l: Layer): string {
    return `layer ${this.layers.indexOf(l)} ${l.describe()}`;
  }

  /** Recurrent layers read the input (then laid out time-major) or a sequence; sequences feed only recurrent layers. */
  private checkSequences(consumers: Map<Layer, Layer[]>): InputLayout {
    const inputUsers = consumers.get(this.input) ?? [];
    const recurrentUsers = inputUsers.filter((l) => l instanceof Recurrent);
    if (recurrentUsers.length && recurrentUsers.length !== inputUsers.length) {
      const other = inputUsers.find((l) => !(l instanceof Recurrent))!;
      throw new ModelSpecError(`${this.who(other)} reads the input of a recurrent model (laid out time-major for ${recurrentUsers[0].describe()}): only recurrent layers may read it`);
    }
    const layout: InputLayout = recurrentUsers.length ? 'time-major' : 'rows';
    // Which symbolic tensors are time-major sequences, and which are views at an element offset
    // (a recurrent layer's outputs live inside its state buffer): only Dense reads those.
    const sequence = new Set<Layer>(layout === 'time-major' ? [this.input] : []);
    const atOffset = new Set<Layer>();
    for (const l of this.layers) {
      const src = l.inbound.map((t) => t.layer);
      if (l instanceof Recurrent) {
        if (!sequence.has(src[0])) {
          throw new ModelSpecError(`${this.who(l)} reads ${src[0].describe()}, which is not a sequence: a recurrent layer reads the model input or a recurrent layer with return_sequences true (optionally through Dropout)`);
        }
        if (l.returnSequences) {
          sequence.add(l);
          const users = consumers.get(l) ?? [];
          if (users.length > 1) throw new ModelSpecError(`${this.who(l)} returns a sequence read by ${users.length} layers: a sequence feeds exactly one recurrent layer`);
        }
        atOffset.add(l);
        continue;
      }
      const seqIn = src.find((s) => sequence.has(s) && s !== this.input);
      if (seqIn) {
        const next = consumers.get(l) ?? [];
        if (!(l instanceof Dropout && next.length === 1 && next[0] instanceof Recurrent)) {
          throw new ModelSpecError(`${this.who(l)} reads the sequence output of ${seqIn.describe()}: only a recurrent layer (optionally through Dropout) reads a sequence; set return_sequences false on the last recurrent layer`);
        }
        sequence.add(l);
        continue;
      }
      const offIn = src.find((s) => atOffset.has(s));
      if (offIn) {
        if (l instanceof Flatten || l instanceof Reshape) atOffset.add(l);
        else if (!(l instanceof Dense)) {
          throw new ModelSpecError(`${this.who(l)} reads the output of ${offIn.describe()}, which only Dense can read (it lives inside the recurrent state): put a Dense layer first`);
        }
      }
    }
    if (atOffset.has(this.outputLayer)) throw new ModelSpecError(`${this.who(this.outputLayer)} is the model's output: add a Dense layer with one unit per class after it`);
    return layout;
  }

  /** Embedding reads integer ids: the model input, and then nothing else reads the input. */
  private checkIds(consumers: Map<Layer, Layer[]>): 'f32' | 'u32' {
    for (const l of this.layers) {
      if (l instanceof Embedding && l.inbound[0].layer !== this.input) {
        throw new ModelSpecError(`${this.who(l)} reads ${l.inbound[0].layer.describe()}: an Embedding reads integer ids, which only the model input holds`);
      }
    }
    const users = consumers.get(this.input) ?? [];
    const embeds = users.filter((l) => l instanceof Embedding);
    if (!embeds.length) return 'f32';
    const other = users.find((l) => !(l instanceof Embedding));
    if (other) throw new ModelSpecError(`${this.who(other)} reads the input, which holds integer ids for ${embeds[0].describe()}: only Embedding layers may read it`);
    return 'u32';
  }

  /** The largest id + 1 the input may hold (the smallest Embedding input_dim), for ids models. */
  get idLimit(): { limit: number; layer: Embedding } | undefined {
    const embeds = this.layers.filter((l): l is Embedding => l instanceof Embedding);
    if (!embeds.length) return undefined;
    const layer = embeds.reduce((a, b) => (b.inputDim < a.inputDim ? b : a));
    return { limit: layer.inputDim, layer };
  }

  private checkOutput(): void {
    const s = this.outputLayer.output!.shape;
    if (s.length !== 1) throw new ModelSpecError(`${this.who(this.outputLayer)} gives the output ${shapeText(s)}: the output must be one score per class (None, classes); add Flatten and Dense`);
    if (this.loss === 'sparse_categorical_crossentropy' && s[0] < 2) throw new ModelSpecError(`${this.who(this.outputLayer)} gives ${s[0]} class score: sparse_categorical_crossentropy needs at least 2 classes`);
  }

  /** Groups consecutive recurrent layers of one cell (and equal Dropout between them) into stacks. */
  private plan(consumers: Map<Layer, Layer[]>): Step[] {
    const steps: Step[] = [];
    const inStack = new Set<Layer>();
    for (const l of this.layers) {
      if (inStack.has(l)) continue;
      if (!(l instanceof Recurrent)) {
        steps.push({ layer: l });
        continue;
      }
      const stack = [l];
      const gaps: Dropout[] = [];
      let keepProb: number | undefined;
      let seed: number | undefined;
      let cur: Recurrent = l;
      while (cur.returnSequences) {
        let next = (consumers.get(cur) ?? [])[0];
        let gap: Dropout | undefined;
        if (next instanceof Dropout) {
          gap = next;
          next = (consumers.get(next) ?? [])[0];
        }
        if (!(next instanceof Recurrent)) break;
        const gapKeep = gap && gap.rate > 0 ? gap.keepProb : 1;
        const fits = next.cell === l.cell && next.forgetBias === l.forgetBias && (keepProb === undefined || keepProb === gapKeep) &&
          (stack.length === 1 || gap?.seed === seed);
        if (!fits) {
          if (gapKeep < 1) {
            throw new ModelSpecError(`${this.who(gap!)} sits between ${cur.describe()} and ${next.describe()}, which cannot be one recurrent stack: Dropout between recurrent layers needs one cell type and one rate (and seed) in every gap of the stack`);
          }
          break;
        }
        keepProb = gapKeep;
        seed = gap?.seed;
        if (gap) {
          gaps.push(gap);
          inStack.add(gap);
        }
        stack.push(next);
        inStack.add(next);
        cur = next;
      }
      steps.push({ stack, gaps, keepProb: keepProb ?? 1, seed });
    }
    return steps;
  }

  /** Per-example input shape. */
  get inputShape(): number[] {
    return [...this.input.shape];
  }

  /** Values per example (a dataset's per-example size must equal it). */
  get inputSize(): number {
    return this.input.shape.reduce((a, b) => a * b, 1);
  }

  get classes(): number {
    return this.outputLayer.output!.shape[0];
  }

  /** Trainable parameters in all. */
  get paramCount(): number {
    return this.layers.reduce((n, l) => n + l.paramCount(l.inbound.map((t) => t.shape)), 0);
  }

  /** Non-trainable persistent weights in all (batch norm's moving statistics). */
  get nonTrainableCount(): number {
    return this.layers.reduce((n, l) => n + l.nonTrainableCount(l.inbound.map((t) => t.shape)), 0);
  }

  /**
   * The model's graph for `batch` examples; `training` turns dropout on; parameters come from (and go
   * to) `store`. `loss.labelSmoothing` smooths the cross-entropy's targets (training graphs).
   */
  build(store: Pick<ParamStore, 'get'>, batch: number, training: boolean, seed: number, loss: { labelSmoothing?: number } = {}): BuiltNet {
    const g = new Graph(`${this.name}${training ? ' train' : ' eval'} b${batch}`);
    const S = this.input.shape;
    const x = this.layout === 'rows' ? g.input('images', [batch, ...S], this.inputDType) : g.input('images', [S[0], batch, ...S.slice(1)]);
    const labels = g.input('labels', [batch], 'u32');
    const mse = this.loss === 'mean_squared_error';
    const targets = mse ? g.input('targets', [batch, this.classes]) : undefined;
    const env: BuildEnv = {
      g, batch, training, seed,
      param: (name, shape, init) => g.param(name, shape, store.get(name, shape, init)),
      persistent: (name, shape, init) => g.persistent(name, shape, store.get(name, shape, init, { trainable: false })),
    };
    const values = new Map<Layer, Tensor>([[this.input, x]]);
    const fold = !mse; // cross-entropy applies the softmax itself: a final softmax is left out
    for (const step of this.steps) {
      if ('layer' in step) {
        const l = step.layer;
        values.set(l, l.emit(env, l.inbound.map((t) => values.get(t.layer)!), fold && l === this.outputLayer));
        continue;
      }
      const { stack } = step;
      const seq = values.get(stack[0].inbound[0].layer)!;
      let inSize = seq.shape[2];
      const weights = stack.map((l) => {
        const w = l.weights(env, inSize);
        inSize = l.units;
        return w;
      });
      const top = stack[stack.length - 1];
      const y = g.recurrent(seq, weights, {
        cell: stack[0].cell, hidden: stack.map((l) => l.units), forgetBias: stack[0].forgetBias,
        keepProb: training ? step.keepProb : 1, seed: step.seed ?? seed, output: top.returnSequences ? 'all' : 'last',
      }, stack[0].name as Recurrent['cell']); // the op's label (typed as a cell name by g.recurrent's default)
      for (const l of [...stack, ...step.gaps]) values.set(l, y);
    }
    const logits = values.get(this.outputLayer)!;
    const smoothing = loss.labelSmoothing ?? 0;
    if (smoothing && mse) throw new ModelSpecError(`label smoothing is for a cross-entropy loss; ${this.name} uses ${this.loss}`);
    let lossT: Tensor, lossSum: Tensor, perExample: Tensor | undefined;
    if (mse) {
      ({ loss: lossT, lossSum } = g.meanSquaredError(logits, targets!));
    } else {
      ({ loss: lossT, lossSum } = g.softmaxCrossEntropy(logits, labels, 'xent', smoothing));
      perExample = lossT.producer!.outputs[2];
    }
    const { predictions, correct } = g.accuracy(logits, labels);
    return { graph: g, x, layout: this.layout, labels, targets, logits, loss: lossT, lossSum, perExample, predictions, correct };
  }

  /** A table like Keras' model.summary(): layer (name and type), output shape, parameters, total. */
  summary(): string {
    const chain = this.layers.every((l, i) => l.inbound.length === 1 && l.inbound[0].layer === (i === 0 ? this.input : this.layers[i - 1]));
    const rows: string[][] = [];
    if (!chain) rows.push([`${this.input.name} (InputLayer)`, shapeText(this.input.shape), '0', '']);
    for (const l of this.layers) {
      const shapes = l.inbound.map((t) => t.shape);
      const row = [`${l.name} (${l.className})`, shapeText(l.output!.shape), String(l.paramCount(shapes) + l.nonTrainableCount(shapes))];
      if (!chain) row.push(l.inbound.map((t) => t.layer.name).join(', '));
      rows.push(row);
    }
    const head = ['Layer (type)', 'Output Shape', 'Param #', ...(chain ? [] : ['Connected to'])];
    const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)) + 3);
    const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c])).join('').trimEnd();
    const total = widths.reduce((a, b) => a + b, 0);
    const n = this.paramCount;
    const fixed = this.nonTrainableCount;
    return [
      `Model: "${this.name}"`,
      '_'.repeat(total),
      line(head),
      '='.repeat(total),
      ...rows.map(line),
      '='.repeat(total),
      `Total params: ${n + fixed}`,
      `Trainable params: ${n}`,
      `Non-trainable params: ${fixed}`,
      '_'.repeat(total),
    ].join('\n');
  }
}

/** A chain of layers on an input of per-example `inputShape` (Keras Sequential). */
export function sequential(inputShape: number[], layers: Layer[], opts: ModelOptions = {}): Model {
  const input = new InputLayer(inputShape);
  nameLayers(input, layers);
  let t: SymbolicTensor = input.output!;
  layers.forEach((l, i) => {
    t = l.connect(t, i);
  });
  return new Model({ inputs: input.output!, outputs: t, ...opts });
}

/** A model from the functional API: `model({ inputs: x, outputs: y })`. */
export function model(opts: { inputs: SymbolicTensor | SymbolicTensor[]; outputs: SymbolicTensor | SymbolicTensor[] } & ModelOptions): Model {
  return new Model(opts);
}
