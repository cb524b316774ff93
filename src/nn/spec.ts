// A model as plain JSON (docs/MODEL-SPEC.md), with Keras' class names and config keys, and the
// reader of a Keras `model.to_json()` (Sequential or functional) made of the supported layers.
// Every problem is a ModelSpecError of one line naming the layer (index, name, class) and the fix.
import {
  Activation, Add, AveragePooling2D, Concatenate, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D, GRU, InputLayer, Layer,
  LSTM, MaxPooling2D, ModelSpecError, Reshape, SimpleRNN, SymbolicTensor, type LayerInit, type ParamNames,
} from './layers.js';
import { BatchNormalization, Embedding, LayerNormalization } from './norm-layers.js';
import { LOSSES, Model, type LossName } from './model.js';

/** One layer of a spec: Keras' class name and config (its `name` included), and what it reads. */
export interface LayerSpec {
  class_name: string;
  config: Record<string, unknown>;
  /** Names of the layers (or the input) it reads; default: the layer before it (the input for the first). */
  inbound?: string[];
}

/** A model as JSON, with Keras' layer class names and fields (docs/MODEL-SPEC.md). */
export interface ModelSpec {
  name?: string;
  /** Per-example input shape, e.g. [28, 28, 1], [784] or [timesteps, features]. */
  input_shape: number[];
  /** Default "input". */
  input_name?: string;
  /** Default sparse_categorical_crossentropy. */
  loss?: LossName;
  /** In build order: a layer reads only the input or layers before it; the last one is the output. */
  layers: LayerSpec[];
}

export const SUPPORTED_LAYERS = [
  'Dense', 'Conv2D', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'Flatten', 'Reshape', 'Dropout',
  'Activation', 'Add', 'Concatenate', 'LSTM', 'GRU', 'SimpleRNN', 'BatchNormalization', 'LayerNormalization', 'Embedding',
] as const;

// ------------------------------------------------------------------ model → spec

/** The model as a plain JSON spec (modelFromSpec(modelToSpec(m)) builds the same graph). */
export function modelToSpec(model: Model): ModelSpec {
  const layers = model.layers.map((l, i): LayerSpec => {
    const config: Record<string, unknown> = { name: l.name, ...l.config() };
    const names = (l as { paramNames?: ParamNames }).paramNames;
    if (names && (names.kernel || names.bias)) config.param_names = { ...names };
    if (l instanceof Dropout && l.keepProb !== 1 - l.rate) config.keep_prob = l.keepProb;
    const prev = i === 0 ? model.input : model.layers[i - 1];
    const chained = l.inbound.length === 1 && l.inbound[0].layer === prev;
    return chained ? { class_name: l.className, config } : { class_name: l.className, config, inbound: l.inbound.map((t) => t.layer.name!) };
  });
  const spec: ModelSpec = { name: model.name, input_shape: model.inputShape, loss: model.loss, layers };
  if (model.input.name !== 'input') spec.input_name = model.input.name;
  return spec;
}

// ------------------------------------------------------------------ spec → model

/** Reads a config's fields, each once, with one-line errors; `keras` tolerates Keras' extra bookkeeping fields. */
class Fields {
  private readonly used = new Set<string>(['name']);
  constructor(private readonly cfg: Record<string, unknown>, private readonly who: string, private readonly keras: boolean) {}

  fail(msg: string): never {
    throw new ModelSpecError(`${this.who}: ${msg}`);
  }

  has(key: string): boolean {
    return this.cfg[key] !== undefined && this.cfg[key] !== null;
  }

  raw(key: string): unknown {
    this.used.add(key);
    return this.cfg[key];
  }

  int(key: string, fallback?: number): number {
    const v = this.raw(key) ?? fallback;
    if (v === undefined) this.fail(`the field "${key}" is missing: give "${key}": a positive integer`);
    if (!Number.isInteger(v) || (v as number) < 1) this.fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  }

  intPair(key: string, fallback?: number | [number, number]): [number, number] {
    const v = this.raw(key) ?? fallback;
    if (v === undefined) this.fail(`the field "${key}" is missing: give "${key}": an integer or [h, w]`);
    const p = typeof v === 'number' ? [v, v] : v;
    if (!Array.isArray(p) || p.length !== 2 || !p.every((d) => Number.isInteger(d) && d >= 1)) this.fail(`"${key}" must be a positive integer or a pair [h, w], got ${JSON.stringify(v)}`);
    return p as [number, number];
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str<T extends string>(key: string, choices: readonly T[], fallback?: T): T {
    const v = this.raw(key) ?? fallback;
    if (v === undefined) this.fail(`the field "${key}" is missing: give "${key}": one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`);
    if (!choices.includes(v as T)) this.fail(`"${key}" ${JSON.stringify(v)} is not supported: use one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`);
    return v as T;
  }

  number(key: string, fallback?: number): number {
    const v = this.raw(key) ?? fallback;
    if (v === undefined) this.fail(`the field "${key}" is missing: give "${key}": a number`);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`"${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  }

  init(key: string): LayerInit | undefined {
    const v = this.raw(key);
    return v === undefined || v === null ? undefined : parseInit(v, (m) => this.fail(`"${key}": ${m}`));
  }

  paramNames(): ParamNames | undefined {
    const v = this.raw('param_names');
    if (v === undefined || v === null) return undefined;
    const o = v as Record<string, unknown>;
    if (typeof v !== 'object' || Object.entries(o).some(([k, s]) => (k !== 'kernel' && k !== 'bias') || typeof s !== 'string')) {
      this.fail(`"param_names" must be {"kernel": name, "bias": name}, got ${JSON.stringify(v)}`);
    }
    return o as ParamNames;
  }

  /** Fields this engine does not implement: only their Keras defaults are accepted. */
  defaults(table: Record<string, (v: unknown) => boolean>): void {
    for (const [key, ok] of Object.entries(table)) {
      if (!(key in this.cfg)) continue;
      this.used.add(key);
      if (!ok(this.cfg[key])) this.fail(`"${key}": ${JSON.stringify(this.cfg[key])} is not supported (only the Keras default): remove it`);
    }
  }

  /** Our spec: a field nothing read is a mistake (a typo); Keras JSON carries bookkeeping fields, ignored. */
  done(known: string[]): void {
    if (this.keras) return;
    const extra = Object.keys(this.cfg).filter((k) => !this.used.has(k));
    if (extra.length) this.fail(`unknown field "${extra[0]}": the fields of this layer are ${['name', ...known].join(', ')}`);
  }
}

const isNull = (v: unknown) => v === null || v === undefined;
const COMMON_DEFAULTS: Record<string, (v: unknown) => boolean> = {
  trainable: (v) => v === true,
  dtype: (v) => isNull(v) || v === 'float32' || (typeof v === 'object' && (v as { config?: { name?: string } }).config?.name === 'float32'),
  activity_regularizer: isNull,
};
const WEIGHT_DEFAULTS: Record<string, (v: unknown) => boolean> = {
  kernel_regularizer: isNull, bias_regularizer: isNull, kernel_constraint: isNull, bias_constraint: isNull,
};
const CHANNELS_LAST = { data_format: (v: unknown) => isNull(v) || v === 'channels_last' };
const ones = (v: unknown) => isNull(v) || v === 1 || (Array.isArray(v) && v.every((d) => d === 1));

const ACTS = ['linear', 'relu', 'sigmoid', 'tanh', 'gelu', 'softmax'] as const;

function parseInit(v: unknown, fail: (msg: string) => never): LayerInit {
  const named: Record<string, LayerInit> = {
    glorot_uniform: 'glorot_uniform', zeros: 'zeros', ones: 'ones',
    random_normal: { kind: 'normal', std: 0.05 }, truncated_normal: { kind: 'truncated_normal', std: 0.05 }, random_uniform: { kind: 'uniform', limit: 0.05 },
  };
  const supported = 'GlorotUniform, Zeros, Ones, Constant, RandomNormal, TruncatedNormal, RandomUniform (or their snake_case names)';
  if (typeof v === 'string') {
    if (v in named) return named[v];
    fail(`initializer "${v}" is not supported: use one of ${supported}`);
  }
  const o = v as { class_name?: unknown; config?: Record<string, unknown> };
  if (typeof o !== 'object' || typeof o.class_name !== 'string') fail(`an initializer is a name or {"class_name": ..., "config": {...}}, got ${JSON.stringify(v)}`);
  const c = o.config ?? {};
  const num = (k: string, d: number) => {
    const x = c[k] ?? d;
    if (typeof x !== 'number') fail(`${o.class_name} ${k} must be a number, got ${JSON.stringify(x)}`);
    return x;
  };
  switch (o.class_name) {
    case 'GlorotUniform': return 'glorot_uniform';
    case 'Zeros': return 'zeros';
    case 'Ones': return 'ones';
    case 'Constant': return { kind: 'const', value: num('value', 0) };
    case 'RandomNormal':
    case 'TruncatedNormal':
      if (num('mean', 0) !== 0) fail(`${o.class_name} with mean ${c.mean} is not supported: use mean 0`);
      return { kind: o.class_name === 'RandomNormal' ? 'normal' : 'truncated_normal', std: num('stddev', 0.05) };
    case 'RandomUniform': {
      const lo = num('minval', -0.05), hi = num('maxval', 0.05);
      if (lo !== -hi) fail(`RandomUniform [${lo}, ${hi}] is not supported: use a range symmetric about 0`);
      return { kind: 'uniform', limit: hi };
    }
    default:
      return fail(`initializer ${o.class_name} is not supported: use one of ${supported}`);
  }
}

/** The layer of class `cls` from its config. */
function layerFromConfig(cls: string, cfg: Record<string, unknown>, who: string, keras: boolean): Layer {
  const f = new Fields(cfg, who, keras);
  const name = cfg.name as string;
  f.defaults(COMMON_DEFAULTS);
  const weighted = () => {
    f.defaults(WEIGHT_DEFAULTS);
    return { useBias: f.bool('use_bias', true), kernelInitializer: f.init('kernel_initializer'), biasInitializer: f.init('bias_initializer'), paramNames: f.paramNames() };
  };
  const weightKeys = ['use_bias', 'kernel_initializer', 'bias_initializer', 'param_names'];
  const pool = () => {
    f.defaults(CHANNELS_LAST);
    const poolSize = f.intPair('pool_size', 2);
    const strides = f.has('strides') ? f.intPair('strides') : poolSize;
    f.raw('strides'); // Keras writes null for "the pool size"
    return { name, poolSize, strides, padding: f.str('padding', ['valid', 'same'] as const, 'valid') };
  };
  let layer: Layer;
  try {
    switch (cls) {
      case 'Dense':
        layer = new Dense({ name, units: f.int('units'), activation: f.str('activation', ACTS, 'linear'), ...weighted() });
        f.done(['units', 'activation', ...weightKeys]);
        break;
      case 'Conv2D':
        f.defaults({ ...CHANNELS_LAST, dilation_rate: ones, groups: ones });
        layer = new Conv2D({
          name, filters: f.int('filters'), kernelSize: f.intPair('kernel_size'), strides: f.intPair('strides', 1),
          padding: f.str('padding', ['valid', 'same'] as const, 'valid'), activation: f.str('activation', ACTS, 'linear'), ...weighted(),
        });
        f.done(['filters', 'kernel_size', 'strides', 'padding', 'activation', ...weightKeys]);
        break;
      case 'MaxPooling2D':
        layer = new MaxPooling2D(pool());
        f.done(['pool_size', 'strides', 'padding']);
        break;
      case 'AveragePooling2D':
        layer = new AveragePooling2D(pool());
        f.done(['pool_size', 'strides', 'padding']);
        break;
      case 'GlobalAveragePooling2D':
        f.defaults({ ...CHANNELS_LAST, keepdims: (v) => isNull(v) || v === false });
        layer = new GlobalAveragePooling2D({ name });
        f.done([]);
        break;
      case 'Flatten':
        f.defaults(CHANNELS_LAST);
        layer = new Flatten({ name });
        f.done([]);
        break;
      case 'Reshape': {
        const t = f.raw('target_shape');
        if (t === undefined) f.fail('the field "target_shape" is missing: give "target_shape": the per-example shape, e.g. [28, 28, 1]');
        layer = new Reshape({ name, targetShape: t as number[] });
        f.done(['target_shape']);
        break;
      }
      case 'Dropout': {
        f.defaults({ noise_shape: isNull });
        const rate = f.number('rate');
        const seed = f.raw('seed');
        const keepProb = f.has('keep_prob') ? f.number('keep_prob') : undefined;
        layer = new Dropout({ name, rate, seed: isNull(seed) ? undefined : (seed as number), keepProb });
        f.done(['rate', 'seed', 'keep_prob']);
        break;
      }
      case 'Activation':
        layer = new Activation({ name, activation: f.str('activation', ACTS) });
        f.done(['activation']);
        break;
      case 'Add':
        layer = new Add({ name });
        f.done([]);
        break;
      case 'Concatenate': {
        const axis = f.raw('axis') ?? -1;
        if (!Number.isInteger(axis)) f.fail(`"axis" must be an integer, got ${JSON.stringify(axis)}`);
        layer = new Concatenate({ name, axis: axis as number });
        f.done(['axis']);
        break;
      }
      case 'LSTM':
      case 'GRU':
      case 'SimpleRNN': {
        f.defaults({
          ...WEIGHT_DEFAULTS, recurrent_regularizer: isNull, recurrent_constraint: isNull,
          activation: (v) => isNull(v) || v === 'tanh',
          recurrent_activation: (v) => isNull(v) || v === 'sigmoid',
          dropout: (v) => isNull(v) || v === 0, recurrent_dropout: (v) => isNull(v) || v === 0,
          return_state: (v) => isNull(v) || v === false, go_backwards: (v) => isNull(v) || v === false,
          stateful: (v) => isNull(v) || v === false, time_major: (v) => isNull(v) || v === false,
          use_bias: (v) => isNull(v) || v === true,
          // One Glorot-uniform matrix over [x, h] initialises the recurrent part too (docs/MODEL-SPEC.md).
          recurrent_initializer: () => true, unroll: () => true, implementation: () => true, seed: () => true,
          // Keras' default GRU (reset_after) reads as TF's GRUCell: same gates, r applied before the matmul.
          reset_after: (v) => keras || isNull(v) || v === false,
        });
        const o = { name, units: f.int('units'), returnSequences: f.bool('return_sequences', false), kernelInitializer: f.init('kernel_initializer'), biasInitializer: f.init('bias_initializer'), paramNames: f.paramNames() };
        const keys = ['units', 'return_sequences', 'kernel_initializer', 'bias_initializer', 'param_names'];
        if (cls === 'LSTM') {
          layer = new LSTM({ ...o, unitForgetBias: f.bool('unit_forget_bias', true) });
          f.done([...keys, 'unit_forget_bias']);
        } else {
          layer = cls === 'GRU' ? new GRU(o) : new SimpleRNN(o);
          f.done(keys);
        }
        break;
      }
      case 'BatchNormalization':
      case 'LayerNormalization': {
        f.defaults({
          beta_regularizer: isNull, gamma_regularizer: isNull, beta_constraint: isNull, gamma_constraint: isNull,
          synchronized: (v) => isNull(v) || v === false, renorm: (v) => isNull(v) || v === false, renorm_clipping: isNull,
          renorm_momentum: () => true, fused: () => true, virtual_batch_size: isNull, adjustment: isNull, rms_scaling: (v) => isNull(v) || v === false,
        });
        const axis = f.raw('axis');
        const o = {
          name, axis: isNull(axis) ? undefined : (axis as number | number[]), epsilon: f.number('epsilon', 1e-3),
          center: f.bool('center', true), scale: f.bool('scale', true),
          betaInitializer: f.init('beta_initializer'), gammaInitializer: f.init('gamma_initializer'),
        };
        const keys = ['axis', 'epsilon', 'center', 'scale', 'beta_initializer', 'gamma_initializer'];
        if (cls === 'BatchNormalization') {
          layer = new BatchNormalization({
            ...o, momentum: f.number('momentum', 0.99),
            movingMeanInitializer: f.init('moving_mean_initializer'), movingVarianceInitializer: f.init('moving_variance_initializer'),
          });
          f.done([...keys, 'momentum', 'moving_mean_initializer', 'moving_variance_initializer']);
        } else {
          layer = new LayerNormalization(o);
          f.done(keys);
        }
        break;
      }
      case 'Embedding':
        f.defaults({
          embeddings_regularizer: isNull, embeddings_constraint: isNull, mask_zero: (v) => isNull(v) || v === false,
          sparse: (v) => isNull(v) || v === false, lora_rank: isNull, input_length: () => true,
        });
        layer = new Embedding({ name, inputDim: f.int('input_dim'), outputDim: f.int('output_dim'), embeddingsInitializer: f.init('embeddings_initializer') });
        f.done(['input_dim', 'output_dim', 'embeddings_initializer']);
        break;
      default:
        throw new ModelSpecError(`${who}: layer class "${cls}" is not supported: use one of ${SUPPORTED_LAYERS.join(', ')}`);
    }
  } catch (e) {
    if (e instanceof ModelSpecError && !e.message.startsWith(who)) throw new ModelSpecError(`${who}: ${e.message}`);
    throw e;
  }
  return layer;
}

/** The spec's layers connected into a model; `keras`: tolerate Keras' bookkeeping fields. */
function build(spec: ModelSpec, keras: boolean): Model {
  if (typeof spec !== 'object' || spec === null) throw new ModelSpecError('a model spec is a JSON object with "input_shape" and "layers" (see docs/MODEL-SPEC.md)');
  const input = new InputLayer(spec.input_shape, { name: spec.input_name ?? 'input' });
  if (!Array.isArray(spec.layers) || spec.layers.length === 0) throw new ModelSpecError('the spec has no "layers": give a list of {"class_name": ..., "config": {...}}');
  if (spec.loss !== undefined && !LOSSES.includes(spec.loss)) throw new ModelSpecError(`"loss" ${JSON.stringify(spec.loss)} is not supported: use ${LOSSES.join(' or ')}`);
  const byName = new Map<string, SymbolicTensor>([[input.name!, input.output!]]);
  const layers: Layer[] = [];
  spec.layers.forEach((ls, i) => {
    const cls = ls && typeof ls === 'object' ? ls.class_name : undefined;
    const cfg = ls && typeof ls === 'object' ? (ls.config ?? {}) : undefined;
    if (typeof cls !== 'string' || typeof cfg !== 'object' || cfg === null) throw new ModelSpecError(`layer ${i}: give {"class_name": "Dense", "config": {...}}, got ${JSON.stringify(ls)}`);
    const name = (cfg as { name?: unknown }).name ?? defaultName(cls, byName);
    if (typeof name !== 'string' || name === '') throw new ModelSpecError(`layer ${i} (${cls}): "name" must be a non-empty string, got ${JSON.stringify(name)}`);
    const who = `layer ${i} "${name}" (${cls})`;
    if (byName.has(name)) throw new ModelSpecError(`${who}: the name "${name}" is used twice: give each layer its own name`);
    const layer = layerFromConfig(cls, { ...cfg, name }, who, keras);
    const inbound = ls.inbound ?? [i === 0 ? input.name! : layers[i - 1].name!];
    if (!Array.isArray(inbound) || inbound.length === 0) throw new ModelSpecError(`${who}: "inbound" must list the names of the layers it reads`);
    const xs = inbound.map((n) => {
      const t = byName.get(n);
      if (!t) throw new ModelSpecError(`${who}: it reads "${n}", which is not the input or a layer before it: list layers in build order and check the name`);
      return t;
    });
    byName.set(name, layer.connect(xs.length === 1 ? xs[0] : xs, i));
    layers.push(layer);
  });
  const out = layers[layers.length - 1];
  const unused = layers.find((l) => l !== out && !layers.some((m) => m.inbound.some((t) => t.layer === l)));
  if (unused) throw new ModelSpecError(`layer ${layers.indexOf(unused)} ${unused.describe()}: its output is not used (the last layer is the model's output): connect it or remove it`);
  return new Model({ inputs: input.output!, outputs: out.output!, name: spec.name, loss: spec.loss });
}

function defaultName(cls: string, taken: Map<string, unknown>): string {
  const base = cls.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  let name = base;
  for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
  return name;
}

function parseJson(json: unknown, what: string): unknown {
  if (typeof json !== 'string') return json;
  try {
    return JSON.parse(json);
  } catch (e) {
    throw new ModelSpecError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A model from its spec (an object or its JSON text); see docs/MODEL-SPEC.md. */
export function modelFromSpec(json: ModelSpec | string | unknown): Model {
  return build(parseJson(json, 'the model spec') as ModelSpec, false);
}

// ------------------------------------------------------------------ Keras to_json

interface KerasLayer {
  class_name: string;
  config: Record<string, unknown>;
  name?: string;
  inbound_nodes?: unknown[];
}

/** Every layer name a Keras inbound node refers to: Keras 2 [[name, 0, 0, {}], ...], Keras 3 {args: [keras tensors]}. */
function historyNames(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    if (typeof node[0] === 'string' && typeof node[1] === 'number') out.push(node[0]);
    else for (const n of node) historyNames(n, out);
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    const h = (o.config as { keras_history?: unknown[] } | undefined)?.keras_history;
    if (o.class_name === '__keras_tensor__' && Array.isArray(h)) out.push(h[0] as string);
    else for (const v of Object.values(o)) historyNames(v, out);
  }
  return out;
}

function inputShapeOf(cfg: Record<string, unknown> | undefined): number[] | undefined {
  const s = (cfg?.batch_input_shape ?? cfg?.batch_shape) as unknown[] | undefined;
  if (Array.isArray(s)) return s.slice(1) as number[];
  return Array.isArray(cfg?.input_shape) ? (cfg.input_shape as number[]) : undefined;
}

/**
 * A model from a Keras `model.to_json()` (Keras 2 or 3; Sequential or functional) made only of
 * supported layers. Architecture only: weights start from the layers' initializers. The loss is
 * not part of to_json: sparse_categorical_crossentropy unless given.
 */
export function modelFromKeras(json: unknown, opts: { loss?: LossName } = {}): Model {
  const top = parseJson(json, 'the Keras model JSON') as { class_name?: string; config?: unknown };
  if (!top || typeof top !== 'object' || typeof top.class_name !== 'string') throw new ModelSpecError('a Keras model JSON has "class_name" and "config" (the text of model.to_json())');
  const cfg = (Array.isArray(top.config) ? { layers: top.config } : top.config ?? {}) as Record<string, unknown>;
  const kLayers = cfg.layers as KerasLayer[] | undefined;
  if (!Array.isArray(kLayers)) throw new ModelSpecError(`the Keras ${top.class_name} has no config.layers: give the text of model.to_json()`);
  const nameOf = (l: KerasLayer) => (l.name ?? l.config?.name) as string;
  const spec: ModelSpec = { name: cfg.name as string | undefined, input_shape: [], layers: [], loss: opts.loss };

  if (top.class_name === 'Sequential') {
    let layers = kLayers;
    if (layers[0]?.class_name === 'InputLayer') {
      spec.input_shape = inputShapeOf(layers[0].config)!;
      layers = layers.slice(1);
    } else {
      const s = inputShapeOf(layers[0]?.config) ?? (Array.isArray(cfg.build_input_shape) ? (cfg.build_input_shape as number[]).slice(1) : undefined);
      spec.input_shape = s!;
    }
    if (!spec.input_shape) throw new ModelSpecError('the Keras Sequential has no input shape (no InputLayer, batch_input_shape or build_input_shape): build the model on an input first');
    spec.layers = layers.map((l) => ({ class_name: l.class_name, config: omit(l.config, ['batch_input_shape', 'batch_shape', 'input_shape']) }));
  } else if (top.class_name === 'Functional' || top.class_name === 'Model') {
    const inputs = kLayers.filter((l) => l.class_name === 'InputLayer');
    if (inputs.length !== 1) throw new ModelSpecError(`the Keras model has ${inputs.length} InputLayers: a model here has exactly one input`);
    spec.input_name = nameOf(inputs[0]);
    spec.input_shape = inputShapeOf(inputs[0].config)!;
    const outs = historyNames(cfg.output_layers);
    if (outs.length !== 1) throw new ModelSpecError(`the Keras model has ${outs.length} outputs: a model here has exactly one output`);
    const rest = kLayers.filter((l) => l.class_name !== 'InputLayer');
    spec.layers = rest.map((l, i) => {
      const nodes = l.inbound_nodes ?? [];
      if (nodes.length !== 1) throw new ModelSpecError(`layer ${i} "${nameOf(l)}" (${l.class_name}): it is applied ${nodes.length} times: a layer is applied once here (no shared layers)`);
      return { class_name: l.class_name, config: { ...l.config, name: nameOf(l) }, inbound: historyNames(nodes[0]) };
    });
    // The output layer goes last (its position in to_json's list is not guaranteed).
    const at = spec.layers.findIndex((l) => l.config.name === outs[0]);
    if (at < 0) throw new ModelSpecError(`the Keras model's output "${outs[0]}" is not one of its layers`);
    spec.layers.push(...spec.layers.splice(at, 1));
  } else {
    throw new ModelSpecError(`a Keras ${top.class_name} is not supported: give a Sequential or functional model's to_json()`);
  }
  return build(spec, true);
}

function omit(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => !keys.includes(k)));
}
