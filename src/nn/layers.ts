// Keras-style layers: each one knows its Keras class name and config, computes its per-example
// output shape (so a bad model fails when it is put together, not deep inside graph building),
// counts its parameters, and emits its ops onto a Graph. Shapes here are PER EXAMPLE (no batch
// dimension), as in Keras: [features], [H, W, C] or [T, features].
import type { Graph } from '../graph/graph.js';
import type { Tensor } from '../graph/tensor.js';
import type { Init } from './params.js';

/** A model that cannot be put together; the message is one line naming the layer and the fix. */
export class ModelSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSpecError';
  }
}

/** Keras activation names ('linear' is no activation). */
export type ActivationName = 'linear' | 'relu' | 'sigmoid' | 'tanh' | 'gelu' | 'softmax';
export const ACTIVATIONS: readonly ActivationName[] = ['linear', 'relu', 'sigmoid', 'tanh', 'gelu', 'softmax'];

/** How a layer's parameter starts: an Init whose Glorot fans the layer fills in, or a Keras name. */
export type LayerInit =
  | Exclude<Init, { kind: 'glorot_uniform' }>
  | { kind: 'glorot_uniform' }
  | 'glorot_uniform'
  | 'zeros'
  | 'ones';

export type PlainInit = Exclude<LayerInit, string>;

export function plainInit(i: LayerInit): PlainInit {
  if (i === 'glorot_uniform') return { kind: 'glorot_uniform' };
  if (i === 'zeros') return { kind: 'zeros' };
  if (i === 'ones') return { kind: 'const', value: 1 };
  return i;
}

function withFans(i: PlainInit, fanIn: number, fanOut: number): Init {
  return i.kind === 'glorot_uniform' ? { kind: 'glorot_uniform', fanIn, fanOut } : i;
}

/** What a layer needs to emit its ops: the graph, the batch, whether dropout is on, the model's parameters. */
export interface BuildEnv {
  g: Graph;
  batch: number;
  training: boolean;
  /** Seed of dropout masks (the trainer's seed unless a Dropout layer sets its own). */
  seed: number;
  param(name: string, shape: number[], init: Init): Tensor;
  /** A persistent non-trainable weight (batch norm's moving statistics): in the ParamStore, no gradient. */
  persistent(name: string, shape: number[], init: Init): Tensor;
}

/** A tensor of the functional API: a layer's output, with its per-example shape. */
export class SymbolicTensor {
  constructor(readonly shape: readonly number[], readonly layer: Layer) {}

  /** The shape and the layer that produced it, for messages. */
  toString(): string {
    return `${this.layer.name ?? this.layer.className} ${shapeText(this.shape)}`;
  }
}

export function shapeText(shape: readonly number[]): string {
  return `(None, ${shape.join(', ')})`;
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Names of a layer's parameters in the ParamStore (default `<layer>/kernel` and `<layer>/bias`). */
export interface ParamNames {
  kernel?: string;
  bias?: string;
}

/** Options every layer takes. */
export interface LayerOptions {
  name?: string;
}

/** A layer: built once into a model (apply it to one input; shared layers are not supported). */
export abstract class Layer {
  abstract readonly className: string;
  name: string | undefined;
  /** The layer's inputs and output once applied. */
  inbound: SymbolicTensor[] = [];
  output: SymbolicTensor | undefined;

  constructor(opts: LayerOptions = {}) {
    this.name = opts.name;
  }

  /** The per-example output shape for these input shapes; throws a plain Error saying what does not fit. */
  abstract outputShape(inputs: (readonly number[])[]): number[];
  /** Trainable parameters for these input shapes. */
  paramCount(_inputs: (readonly number[])[]): number {
    return 0;
  }
  /** Non-trainable persistent weights (Keras' non-trainable params, e.g. moving statistics). */
  nonTrainableCount(_inputs: (readonly number[])[]): number {
    return 0;
  }
  /** The Keras config of this layer (without the name). */
  abstract config(): Record<string, unknown>;
  /** Emits the layer's ops; `foldSoftmax`: leave out a final softmax (the loss applies it). */
  abstract emit(env: BuildEnv, xs: Tensor[], foldSoftmax: boolean): Tensor;
  /** Number of inputs: 1, or 'many' for merge layers. */
  get arity(): 1 | 'many' {
    return 1;
  }
  /** The layer's activation, for folding a final softmax into the loss. */
  get activationName(): ActivationName {
    return 'linear';
  }

  /** Connects the layer to its input(s) and returns its output (the functional API). */
  apply(x: SymbolicTensor | SymbolicTensor[]): SymbolicTensor {
    return this.connect(x);
  }

  /** apply(), with the layer's index in its model for the error messages. */
  connect(x: SymbolicTensor | SymbolicTensor[], index?: number): SymbolicTensor {
    const xs = Array.isArray(x) ? x : [x];
    const who = `layer ${index === undefined ? '' : `${index} `}${this.describe()}`;
    if (this.output) throw new ModelSpecError(`${who} is already applied: a layer is used once (make a new layer for another input)`);
    if (this.arity === 1 && xs.length !== 1) throw new ModelSpecError(`${who} takes one input, got ${xs.length}: apply it to one tensor`);
    if (this.arity === 'many' && xs.length < 2) throw new ModelSpecError(`${who} merges two or more inputs, got ${xs.length}: apply it to a list of tensors`);
    let shape: number[];
    try {
      shape = this.outputShape(xs.map((t) => t.shape));
    } catch (e) {
      throw new ModelSpecError(`${who}: ${(e as Error).message}`);
    }
    this.inbound = xs;
    this.output = new SymbolicTensor(shape, this);
    return this.output;
  }

  /** The layer for messages: its name (if any) and class, e.g. `"conv1" (Conv2D)`. */
  describe(): string {
    return this.name ? `"${this.name}" (${this.className})` : `(${this.className})`;
  }
}

/** The model's input (Keras InputLayer). */
export class InputLayer extends Layer {
  readonly className = 'InputLayer';
  constructor(readonly shape: number[], opts: LayerOptions = {}) {
    super(opts);
    checkShape(shape, 'input shape');
    this.output = new SymbolicTensor([...shape], this);
  }
  outputShape(): number[] {
    return [...this.shape];
  }
  config() {
    return { batch_input_shape: [null, ...this.shape] };
  }
  emit(): Tensor {
    throw new Error('an InputLayer emits nothing');
  }
}

function checkShape(shape: unknown, what: string): asserts shape is number[] {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ModelSpecError(`${what} ${JSON.stringify(shape)} must be a non-empty list of positive integers, e.g. [28, 28, 1]`);
  }
}

// -------------------------------------------------------------------- shared emit helpers

/** Graph activations a kernel fuses into dense and conv2d. */
type Fused = 'none' | 'relu' | 'sigmoid' | 'tanh';

/**
 * Splits an activation into the part fused into the op and a separate softmax or gelu (or none).
 * gelu is never fused: its backward needs the pre-activation, which a fused kernel does not keep.
 */
function splitActivation(act: ActivationName, foldSoftmax: boolean): { fused: Fused; softmax: boolean; gelu: boolean } {
  if (act === 'softmax') return { fused: 'none', softmax: !foldSoftmax, gelu: false };
  if (act === 'gelu') return { fused: 'none', softmax: false, gelu: true };
  return { fused: act === 'linear' ? 'none' : act, softmax: false, gelu: false };
}

/** The softmax activation over the last axis. */
function softmax(g: Graph, x: Tensor, name: string): Tensor {
  return g.activation(x, 'softmax', name);
}

function checkActivation(a: unknown, who: string): ActivationName {
  if (typeof a !== 'string' || !(ACTIVATIONS as readonly string[]).includes(a)) {
    throw new ModelSpecError(`${who}: activation ${JSON.stringify(a)} is not supported: use one of ${ACTIVATIONS.join(', ')}`);
  }
  return a as ActivationName;
}

export function checkPositiveInt(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new ModelSpecError(`${what} must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function pair(v: number | [number, number] | number[], what: string): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2) throw new ModelSpecError(`${what} must be a number or a pair [h, w], got ${JSON.stringify(v)}`);
  return [checkPositiveInt(p[0], what), checkPositiveInt(p[1], what)];
}

/** Keras' padding: 'same' keeps the size (at stride 1), 'valid' uses only whole windows. */
export type PaddingName = 'same' | 'valid';

function checkPadding(p: unknown, what: string): PaddingName {
  if (p !== 'same' && p !== 'valid') throw new ModelSpecError(`${what} must be "same" or "valid", got ${JSON.stringify(p)}`);
  return p;
}

function windowOut(n: number, k: number, s: number, padding: PaddingName): number {
  return padding === 'same' ? Math.ceil(n / s) : Math.ceil((n - k + 1) / s);
}

export function initConfig(i: PlainInit): unknown {
  switch (i.kind) {
    case 'glorot_uniform': return { class_name: 'GlorotUniform', config: { seed: null } };
    case 'zeros': return { class_name: 'Zeros', config: {} };
    case 'const': return { class_name: 'Constant', config: { value: i.value } };
    case 'normal': return { class_name: 'RandomNormal', config: { mean: 0, stddev: i.std, seed: null } };
    case 'truncated_normal': return { class_name: 'TruncatedNormal', config: { mean: 0, stddev: i.std, seed: null } };
    case 'uniform': return { class_name: 'RandomUniform', config: { minval: -i.limit, maxval: i.limit, seed: null } };
  }
}

// -------------------------------------------------------------------- Dense

/** Options of a Dense layer (Keras names, camel-cased). */
export interface DenseOptions extends LayerOptions {
  units: number;
  activation?: ActivationName;
  useBias?: boolean;
  kernelInitializer?: LayerInit;
  biasInitializer?: LayerInit;
  paramNames?: ParamNames;
}

/** y = act(x·W + b) over the last axis (Keras Dense); a final softmax may be folded into the loss. */
export class Dense extends Layer {
  readonly className = 'Dense';
  readonly units: number;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  readonly kernelInit: PlainInit;
  readonly biasInit: PlainInit;
  readonly paramNames: ParamNames;

  constructor(o: DenseOptions) {
    super(o);
    this.units = checkPositiveInt(o.units, 'Dense units');
    this.activation = checkActivation(o.activation ?? 'linear', 'Dense');
    this.useBias = o.useBias ?? true;
    this.kernelInit = plainInit(o.kernelInitializer ?? 'glorot_uniform');
    this.biasInit = plainInit(o.biasInitializer ?? 'zeros');
    this.paramNames = o.paramNames ?? {};
  }

  override get activationName(): ActivationName {
    return this.activation;
  }

  outputShape([s]: (readonly number[])[]): number[] {
    return [...s.slice(0, -1), this.units];
  }

  override paramCount([s]: (readonly number[])[]): number {
    return s[s.length - 1] * this.units + (this.useBias ? this.units : 0);
  }

  config() {
    return {
      units: this.units, activation: this.activation, use_bias: this.useBias,
      kernel_initializer: initConfig(this.kernelInit), bias_initializer: initConfig(this.biasInit),
    };
  }

  emit(env: BuildEnv, [x]: Tensor[], foldSoftmax: boolean): Tensor {
    const name = this.name!;
    const { g, batch } = env;
    const inSize = x.shape[x.shape.length - 1];
    const w = env.param(this.paramNames.kernel ?? `${name}/kernel`, [inSize, this.units], withFans(this.kernelInit, inSize, this.units));
    const b = this.useBias ? env.param(this.paramNames.bias ?? `${name}/bias`, [this.units], withFans(this.biasInit, inSize, this.units)) : undefined;
    const { fused, softmax: sm, gelu } = splitActivation(this.activation, foldSoftmax);
    // Keras applies Dense to the last axis: rows of a higher-rank input are viewed as a batch of vectors.
    const rows = x.shape.length === 2 ? x : g.reshape(x, [x.size / inSize, inSize], `${name}/rows`);
    let y = g.dense(rows, w, b, fused, name);
    if (gelu) y = g.activation(y, 'gelu', `${name}/gelu`);
    if (x.shape.length !== 2) y = g.reshape(y, [batch, ...x.shape.slice(1, -1), this.units], `${name}/unrows`);
    return sm ? softmax(g, y, `${name}/softmax`) : y;
  }
}

// -------------------------------------------------------------------- Conv2D

/** Options of a Conv2D layer (Keras names, camel-cased). */
export interface Conv2dLayerOptions extends LayerOptions {
  filters: number;
  kernelSize: number | [number, number];
  strides?: number | [number, number];
  padding?: PaddingName;
  activation?: ActivationName;
  useBias?: boolean;
  kernelInitializer?: LayerInit;
  biasInitializer?: LayerInit;
  paramNames?: ParamNames;
}

/** 2-D convolution over [H, W, C] (channels last), filter [kh, kw, C, filters] (Keras Conv2D). */
export class Conv2D extends Layer {
  readonly className = 'Conv2D';
  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: PaddingName;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  readonly kernelInit: PlainInit;
  readonly biasInit: PlainInit;
  readonly paramNames: ParamNames;

  constructor(o: Conv2dLayerOptions) {
    super(o);
    this.filters = checkPositiveInt(o.filters, 'Conv2D filters');
    this.kernelSize = pair(o.kernelSize, 'Conv2D kernel_size');
    this.strides = pair(o.strides ?? 1, 'Conv2D strides');
    this.padding = checkPadding(o.padding ?? 'valid', 'Conv2D padding');
    this.activation = checkActivation(o.activation ?? 'linear', 'Conv2D');
    this.useBias = o.useBias ?? true;
    this.kernelInit = plainInit(o.kernelInitializer ?? 'glorot_uniform');
    this.biasInit = plainInit(o.biasInitializer ?? 'zeros');
    this.paramNames = o.paramNames ?? {};
  }

  override get activationName(): ActivationName {
    return this.activation;
  }

  outputShape([s]: (readonly number[])[]): number[] {
    if (s.length !== 3) throw new Error(`needs an input of shape (height, width, channels), got ${shapeText(s)}: add a Reshape first`);
    const [kh, kw] = this.kernelSize;
    const oh = windowOut(s[0], kh, this.strides[0], this.padding), ow = windowOut(s[1], kw, this.strides[1], this.padding);
    if (oh < 1 || ow < 1) throw new Error(`a ${kh}x${kw} "valid" window does not fit the ${s[0]}x${s[1]} input: use padding "same" or a smaller kernel_size`);
    return [oh, ow, this.filters];
  }

  override paramCount([s]: (readonly number[])[]): number {
    return this.kernelSize[0] * this.kernelSize[1] * s[2] * this.filters + (this.useBias ? this.filters : 0);
  }

  config() {
    return {
      filters: this.filters, kernel_size: [...this.kernelSize], strides: [...this.strides], padding: this.padding,
      activation: this.activation, use_bias: this.useBias,
      kernel_initializer: initConfig(this.kernelInit), bias_initializer: initConfig(this.biasInit),
    };
  }

  emit(env: BuildEnv, [x]: Tensor[], foldSoftmax: boolean): Tensor {
    const name = this.name!;
    const [kh, kw] = this.kernelSize;
    const C = x.shape[3];
    // Keras' fans of a convolution: receptive field × channels in / out.
    const fanIn = kh * kw * C, fanOut = kh * kw * this.filters;
    const f = env.param(this.paramNames.kernel ?? `${name}/kernel`, [kh, kw, C, this.filters], withFans(this.kernelInit, fanIn, fanOut));
    const b = this.useBias ? env.param(this.paramNames.bias ?? `${name}/bias`, [this.filters], withFans(this.biasInit, fanIn, fanOut)) : undefined;
    const { fused, softmax: sm, gelu } = splitActivation(this.activation, foldSoftmax);
    let y = env.g.conv2d(x, f, b, { stride: this.strides, padding: this.padding === 'same' ? 'SAME' : 'VALID', activation: fused }, name);
    if (gelu) y = env.g.activation(y, 'gelu', `${name}/gelu`);
    return sm ? softmax(env.g, y, `${name}/softmax`) : y;
  }
}

// -------------------------------------------------------------------- pooling

/** Options of MaxPooling2D and AveragePooling2D. */
export interface Pool2dOptions extends LayerOptions {
  poolSize?: number | [number, number];
  /** Default: the pool size (Keras). */
  strides?: number | [number, number];
  padding?: PaddingName;
}

abstract class Pool2D extends Layer {
  readonly poolSize: [number, number];
  readonly strides: [number, number];
  readonly padding: PaddingName;

  constructor(o: Pool2dOptions, what: string) {
    super(o);
    this.poolSize = pair(o.poolSize ?? 2, `${what} pool_size`);
    this.strides = pair(o.strides ?? this.poolSize, `${what} strides`);
    this.padding = checkPadding(o.padding ?? 'valid', `${what} padding`);
  }

  outputShape([s]: (readonly number[])[]): number[] {
    if (s.length !== 3) throw new Error(`needs an input of shape (height, width, channels), got ${shapeText(s)}`);
    const [kh, kw] = this.poolSize;
    const oh = windowOut(s[0], kh, this.strides[0], this.padding), ow = windowOut(s[1], kw, this.strides[1], this.padding);
    if (oh < 1 || ow < 1) throw new Error(`a ${kh}x${kw} "valid" window does not fit the ${s[0]}x${s[1]} input: use padding "same" or a smaller pool_size`);
    return [oh, ow, s[2]];
  }

  config() {
    return { pool_size: [...this.poolSize], strides: [...this.strides], padding: this.padding };
  }

  protected opts() {
    return { size: this.poolSize, stride: this.strides, padding: this.padding === 'same' ? 'SAME' as const : 'VALID' as const };
  }
}

/** Max over each pool_size window (Keras MaxPooling2D), NHWC. */
export class MaxPooling2D extends Pool2D {
  readonly className = 'MaxPooling2D';
  constructor(o: Pool2dOptions = {}) {
    super(o, 'MaxPooling2D');
  }
  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    return env.g.maxPool(x, this.opts(), this.name);
  }
}

/** Mean over each pool_size window (Keras AveragePooling2D), NHWC. */
export class AveragePooling2D extends Pool2D {
  readonly className = 'AveragePooling2D';
  constructor(o: Pool2dOptions = {}) {
    super(o, 'AveragePooling2D');
  }
  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    return env.g.avgPool(x, this.opts(), this.name);
  }
}

/** Mean over height and width: (H, W, C) → (C). */
export class GlobalAveragePooling2D extends Layer {
  readonly className = 'GlobalAveragePooling2D';
  outputShape([s]: (readonly number[])[]): number[] {
    if (s.length !== 3) throw new Error(`needs an input of shape (height, width, channels), got ${shapeText(s)}`);
    return [s[2]];
  }
  config() {
    return {};
  }
  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    return env.g.globalAvgPool(x, this.name);
  }
}

// -------------------------------------------------------------------- shape layers

/** One vector per example (row-major, as Keras flattens channels-last data). */
export class Flatten extends Layer {
  readonly className = 'Flatten';
  outputShape([s]: (readonly number[])[]): number[] {
    return [prod(s)];
  }
  config() {
    return {};
  }
  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    return env.g.reshape(x, [env.batch, x.size / env.batch], this.name);
  }
}

/** Options of a Reshape layer. */
export interface ReshapeOptions extends LayerOptions {
  /** Per-example shape; one entry may be -1 (inferred). */
  targetShape: number[];
}

export class Reshape extends Layer {
  readonly className = 'Reshape';
  readonly targetShape: number[];
  constructor(o: ReshapeOptions) {
    super(o);
    const t = o.targetShape;
    if (!Array.isArray(t) || t.length === 0 || !t.every((d) => Number.isInteger(d) && (d >= 1 || d === -1)) || t.filter((d) => d === -1).length > 1) {
      throw new ModelSpecError(`Reshape target_shape ${JSON.stringify(t)} must list positive integers (at most one -1), e.g. [28, 28, 1]`);
    }
    this.targetShape = [...t];
  }
  outputShape([s]: (readonly number[])[]): number[] {
    const n = prod(s);
    const known = prod(this.targetShape.filter((d) => d !== -1));
    const out = this.targetShape.map((d) => (d === -1 ? n / known : d));
    if (prod(out) !== n || !out.every(Number.isInteger)) throw new Error(`cannot view ${shapeText(s)} (${n} values) as ${shapeText(this.targetShape)}: give a target_shape with ${n} values`);
    return out;
  }
  config() {
    return { target_shape: [...this.targetShape] };
  }
  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    return env.g.reshape(x, [env.batch, ...this.output!.shape], this.name);
  }
}

// -------------------------------------------------------------------- Dropout, Activation

/** Options of a Dropout layer. */
export interface DropoutOptions extends LayerOptions {
  /** Fraction of the values DROPPED in training (Keras), in [0, 1). */
  rate: number;
  /** Mask seed (default: the trainer's seed). */
  seed?: number;
}

/** Inverted dropout in training, identity in evaluation (Keras Dropout: `rate` is the fraction dropped). */
export class Dropout extends Layer {
  readonly className = 'Dropout';
  readonly rate: number;
  readonly seed: number | undefined;
  /** The keep probability (1 − rate), or the exact one a built-in net was given. */
  readonly keepProb: number;
  constructor(o: DropoutOptions & { keepProb?: number }) {
    super(o);
    if (typeof o.rate !== 'number' || !(o.rate >= 0 && o.rate < 1)) throw new ModelSpecError(`Dropout rate must be in [0, 1) (the fraction dropped), got ${JSON.stringify(o.rate)}`);
    if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new ModelSpecError(`Dropout seed must be an integer, got ${JSON.stringify(o.seed)}`);
    this.rate = o.rate;
    this.seed = o.seed;
    this.keepProb = o.keepProb ?? 1 - o.rate;
  }
  outputShape([s]: (readonly number[])[]): number[] {
    return [...s];
  }
  config() {
    return this.seed === undefined ? { rate: this.rate } : { rate: this.rate, seed: this.seed };
  }
  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    return env.training ? env.g.dropout(x, this.keepProb, this.seed ?? env.seed, this.name) : x;
  }
}

/** Options of an Activation layer. */
export interface ActivationOptions extends LayerOptions {
  activation: ActivationName;
}

export class Activation extends Layer {
  readonly className = 'Activation';
  readonly activation: ActivationName;
  constructor(o: ActivationOptions) {
    super(o);
    this.activation = checkActivation(o.activation, 'Activation');
  }
  override get activationName(): ActivationName {
    return this.activation;
  }
  outputShape([s]: (readonly number[])[]): number[] {
    return [...s];
  }
  config() {
    return { activation: this.activation };
  }
  emit(env: BuildEnv, [x]: Tensor[], foldSoftmax: boolean): Tensor {
    if (this.activation === 'linear' || (this.activation === 'softmax' && foldSoftmax)) return x;
    if (this.activation === 'softmax') return softmax(env.g, x, this.name!);
    return env.g.activation(x, this.activation, this.name);
  }
}

// -------------------------------------------------------------------- merges

/** Elementwise sum of two or more tensors of one shape (Keras Add). */
export class Add extends Layer {
  readonly className = 'Add';
  override get arity(): 'many' {
    return 'many';
  }
  outputShape(ss: (readonly number[])[]): number[] {
    for (const s of ss) if (s.join() !== ss[0].join()) throw new Error(`inputs ${ss.map(shapeText).join(' and ')} differ: Add needs one shape`);
    return [...ss[0]];
  }
  config() {
    return {};
  }
  emit(env: BuildEnv, xs: Tensor[]): Tensor {
    let y = env.g.add(xs[0], xs[1], this.name);
    for (let i = 2; i < xs.length; i++) y = env.g.add(y, xs[i], `${this.name}/${i}`);
    return y;
  }
}

/** Joins tensors along the last axis (Keras Concatenate, axis -1). */
export class Concatenate extends Layer {
  readonly className = 'Concatenate';
  /** Keras counts the batch axis: -1, or the per-example rank, is the last axis. */
  readonly axis: number;
  constructor(o: LayerOptions & { axis?: number } = {}) {
    super(o);
    this.axis = o.axis ?? -1;
  }
  override get arity(): 'many' {
    return 'many';
  }
  outputShape(ss: (readonly number[])[]): number[] {
    if (this.axis !== -1 && this.axis !== ss[0].length) throw new Error(`axis ${this.axis} is not the last axis: Concatenate joins along the last axis only (axis -1)`);
    const lead = (s: readonly number[]) => s.slice(0, -1).join();
    for (const s of ss) {
      if (s.length !== ss[0].length || lead(s) !== lead(ss[0])) throw new Error(`inputs ${ss.map(shapeText).join(' and ')} differ before the last axis: Concatenate joins along the last axis only`);
    }
    return [...ss[0].slice(0, -1), ss.reduce((a, s) => a + s[s.length - 1], 0)];
  }
  config() {
    return { axis: -1 };
  }
  emit(env: BuildEnv, xs: Tensor[]): Tensor {
    return env.g.concat(xs, this.name);
  }
}

// -------------------------------------------------------------------- recurrent

export type RecurrentKind = 'lstm' | 'gru' | 'rnn';
export const GATES: Record<RecurrentKind, number> = { lstm: 4, gru: 3, rnn: 1 };

/** Options of the recurrent layers (LSTM, GRU, SimpleRNN). */
export interface RecurrentLayerOptions extends LayerOptions {
  units: number;
  /** Output every step's state (a sequence for the next recurrent layer) instead of the last one. */
  returnSequences?: boolean;
  kernelInitializer?: LayerInit;
  biasInitializer?: LayerInit;
  paramNames?: ParamNames;
}

/**
 * A recurrent layer over a sequence (T, features); the graph runs it time-major. Consecutive
 * recurrent layers of one cell become ONE g.recurrent call (a stack), with Dropout between them
 * when every gap has the same rate. The weights are one matrix [features + units, gates·units]
 * over concat([x, h]) (TF's cell layout), initialised as one Glorot-uniform matrix.
 */
export abstract class Recurrent extends Layer {
  abstract readonly cell: RecurrentKind;
  readonly units: number;
  readonly returnSequences: boolean;
  readonly kernelInit: PlainInit;
  readonly biasInit: PlainInit;
  readonly paramNames: ParamNames;

  constructor(o: RecurrentLayerOptions, what: string) {
    super(o);
    this.units = checkPositiveInt(o.units, `${what} units`);
    this.returnSequences = o.returnSequences ?? false;
    this.kernelInit = plainInit(o.kernelInitializer ?? 'glorot_uniform');
    this.biasInit = plainInit(o.biasInitializer ?? 'zeros');
    this.paramNames = o.paramNames ?? {};
  }

  /** LSTM: the constant added to the forget gate (Keras unit_forget_bias: 1). */
  get forgetBias(): number {
    return 1;
  }

  outputShape([s]: (readonly number[])[]): number[] {
    if (s.length !== 2) throw new Error(`needs a sequence input (timesteps, features), got ${shapeText(s)}`);
    return this.returnSequences ? [s[0], this.units] : [this.units];
  }

  override paramCount([s]: (readonly number[])[]): number {
    const G = GATES[this.cell];
    return (s[1] + this.units) * G * this.units + G * this.units;
  }

  config(): Record<string, unknown> {
    return {
      units: this.units, return_sequences: this.returnSequences,
      kernel_initializer: initConfig(this.kernelInit), bias_initializer: initConfig(this.biasInit),
    };
  }

  /** This layer's weight pair in a stack whose input has `inSize` features. */
  weights(env: BuildEnv, inSize: number): { w: Tensor; b: Tensor } {
    const name = this.name!;
    const H = this.units, G = GATES[this.cell];
    const fanIn = inSize + H, fanOut = G * H;
    return {
      w: env.param(this.paramNames.kernel ?? `${name}/kernel`, [inSize + H, G * H], withFans(this.kernelInit, fanIn, fanOut)),
      b: env.param(this.paramNames.bias ?? `${name}/bias`, [G * H], withFans(this.biasInit, fanIn, fanOut)),
    };
  }

  emit(): Tensor {
    throw new Error('recurrent layers are emitted as a stack by the model');
  }
}

/** LSTM as Keras' (unit_forget_bias, the default: the forget gate's bias starts at 1). */
export class LSTM extends Recurrent {
  readonly className = 'LSTM';
  readonly cell = 'lstm';
  readonly unitForgetBias: boolean;
  constructor(o: RecurrentLayerOptions & { unitForgetBias?: boolean }) {
    super(o, 'LSTM');
    this.unitForgetBias = o.unitForgetBias ?? true;
  }
  override get forgetBias(): number {
    return this.unitForgetBias ? 1 : 0;
  }
  /** Keras' config of the layer, with unit_forget_bias. */
  override config() {
    return { ...super.config(), unit_forget_bias: this.unitForgetBias };
  }
}

/** GRU as TF's GRUCell: r⊙h before the candidate's matmul (Keras reset_after=False), one bias. */
export class GRU extends Recurrent {
  readonly className = 'GRU';
  readonly cell = 'gru';
  constructor(o: RecurrentLayerOptions) {
    super(o, 'GRU');
  }
  /** Keras' config of the layer, with reset_after (always false). */
  override config() {
    return { ...super.config(), reset_after: false };
  }
}

/** A fully connected recurrent layer with a tanh state (Keras SimpleRNN). */
export class SimpleRNN extends Recurrent {
  readonly className = 'SimpleRNN';
  readonly cell = 'rnn';
  constructor(o: RecurrentLayerOptions) {
    super(o, 'SimpleRNN');
  }
}

// -------------------------------------------------------------------- factories (the API)

/** A new Dense layer. */
export const dense = (o: DenseOptions) => new Dense(o);
/** A new Conv2D layer. */
export const conv2d = (o: Conv2dLayerOptions) => new Conv2D(o);
/** A new MaxPooling2D layer. */
export const maxPool2d = (o: Pool2dOptions = {}) => new MaxPooling2D(o);
/** A new AveragePooling2D layer. */
export const avgPool2d = (o: Pool2dOptions = {}) => new AveragePooling2D(o);
/** A new GlobalAveragePooling2D layer. */
export const globalAvgPool2d = (o: LayerOptions = {}) => new GlobalAveragePooling2D(o);
/** A new Flatten layer. */
export const flatten = (o: LayerOptions = {}) => new Flatten(o);
/** A new Reshape layer. */
export const reshape = (o: ReshapeOptions) => new Reshape(o);
/** A new Dropout layer. */
export const dropout = (o: DropoutOptions) => new Dropout(o);
/** A new Activation layer (a name alone is the activation). */
export const activation = (o: ActivationOptions | ActivationName) => new Activation(typeof o === 'string' ? { activation: o } : o);
/** A new LSTM layer. */
export const lstm = (o: RecurrentLayerOptions & { unitForgetBias?: boolean }) => new LSTM(o);
/** A new GRU layer. */
export const gru = (o: RecurrentLayerOptions) => new GRU(o);
/** A new SimpleRNN layer. */
export const simpleRnn = (o: RecurrentLayerOptions) => new SimpleRNN(o);

/** The model's input: a symbolic tensor of per-example `shape` (functional API). */
export function input(shape: number[], opts: LayerOptions = {}): SymbolicTensor {
  return new InputLayer(shape, opts).output!;
}

/** Elementwise sum (functional API). */
export function add(xs: SymbolicTensor[], opts: LayerOptions = {}): SymbolicTensor {
  return new Add(opts).apply(xs);
}

/** Join along the last axis (functional API). */
export function concat(xs: SymbolicTensor[], opts: LayerOptions & { axis?: number } = {}): SymbolicTensor {
  return new Concatenate(opts).apply(xs);
}
