// Keras BatchNormalization, LayerNormalization and Embedding (per-example shapes, as in layers.ts).
import type { Tensor } from '../graph/tensor.js';
import {
  Layer, ModelSpecError, checkPositiveInt, initConfig, plainInit, shapeText,
  type BuildEnv, type LayerInit, type LayerOptions, type PlainInit,
} from './layers.js';

/** Keras' axis: -1, or the last axis counted with the batch (e.g. 3 for images), possibly as a list of one. */
function checkAxis(axis: number | number[] | undefined, what: string): number {
  const a = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis ?? -1;
  if (!Number.isInteger(a)) throw new ModelSpecError(`${what} axis ${JSON.stringify(axis)} is not supported: only the last axis (-1)`);
  return a as number;
}

function checkEpsilon(e: unknown, what: string): number {
  if (typeof e !== 'number' || !(e > 0)) throw new ModelSpecError(`${what} epsilon must be a positive number, got ${JSON.stringify(e)}`);
  return e;
}

export interface NormalizationOptions extends LayerOptions {
  /** Only the last axis: -1 (channels of NHWC images, features of vectors), or its index counting the batch. */
  axis?: number | number[];
  /** Default 1e-3 (Keras). */
  epsilon?: number;
  /** Learn β (default true). */
  center?: boolean;
  /** Learn γ (default true). */
  scale?: boolean;
  betaInitializer?: LayerInit;
  gammaInitializer?: LayerInit;
}

abstract class Normalization extends Layer {
  readonly axis: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly betaInit: PlainInit;
  readonly gammaInit: PlainInit;

  constructor(o: NormalizationOptions, what: string) {
    super(o);
    this.axis = checkAxis(o.axis, what);
    this.epsilon = checkEpsilon(o.epsilon ?? 1e-3, what);
    this.center = o.center ?? true;
    this.scale = o.scale ?? true;
    this.betaInit = plainInit(o.betaInitializer ?? 'zeros');
    this.gammaInit = plainInit(o.gammaInitializer ?? 'ones');
  }

  outputShape([s]: (readonly number[])[]): number[] {
    if (this.axis !== -1 && this.axis !== s.length) throw new Error(`axis ${this.axis} is not the last axis of ${shapeText(s)}: only the last axis (-1) is normalized`);
    return [...s];
  }

  override paramCount([s]: (readonly number[])[]): number {
    return s[s.length - 1] * ((this.center ? 1 : 0) + (this.scale ? 1 : 0));
  }

  config(): Record<string, unknown> {
    return {
      axis: -1, epsilon: this.epsilon, center: this.center, scale: this.scale,
      beta_initializer: initConfig(this.betaInit), gamma_initializer: initConfig(this.gammaInit),
    };
  }

  /** γ and β (Keras names `<layer>/gamma`, `<layer>/beta`) where the layer learns them. */
  protected affine(env: BuildEnv, C: number): { gamma?: Tensor; beta?: Tensor } {
    const name = this.name!;
    // Keras' initializers for these are never Glorot; fans of C keep a Glorot choice defined.
    const init = (i: PlainInit) => (i.kind === 'glorot_uniform' ? { kind: 'glorot_uniform' as const, fanIn: C, fanOut: C } : i);
    return {
      gamma: this.scale ? env.param(`${name}/gamma`, [C], init(this.gammaInit)) : undefined,
      beta: this.center ? env.param(`${name}/beta`, [C], init(this.betaInit)) : undefined,
    };
  }
}

export interface BatchNormalizationOptions extends NormalizationOptions {
  /** Weight of the old running statistics in each update (default 0.99, Keras). */
  momentum?: number;
  movingMeanInitializer?: LayerInit;
  movingVarianceInitializer?: LayerInit;
}

/**
 * Keras BatchNormalization over the last axis. Training normalizes with the batch's statistics
 * (over the batch, and H and W of images) and moves the running statistics, on the GPU in the same
 * step: moving = moving·momentum + batch·(1 − momentum), the batch variance biased (as Keras 3).
 * Evaluation normalizes with the running statistics. These are the non-trainable weights
 * `<layer>/moving_mean` and `<layer>/moving_variance` of the ParamStore, so checkpoints carry them.
 */
export class BatchNormalization extends Normalization {
  readonly className = 'BatchNormalization';
  readonly momentum: number;
  readonly movingMeanInit: PlainInit;
  readonly movingVarianceInit: PlainInit;

  constructor(o: BatchNormalizationOptions = {}) {
    super(o, 'BatchNormalization');
    const m = o.momentum ?? 0.99;
    if (typeof m !== 'number' || !(m >= 0 && m <= 1)) throw new ModelSpecError(`BatchNormalization momentum must be in [0, 1], got ${JSON.stringify(m)}`);
    this.momentum = m;
    this.movingMeanInit = plainInit(o.movingMeanInitializer ?? 'zeros');
    this.movingVarianceInit = plainInit(o.movingVarianceInitializer ?? 'ones');
  }

  override nonTrainableCount([s]: (readonly number[])[]): number {
    return 2 * s[s.length - 1];
  }

  /** The layer's Keras config (momentum, epsilon, center, scale, ...). */
  override config() {
    return {
      ...super.config(), momentum: this.momentum,
      moving_mean_initializer: initConfig(this.movingMeanInit), moving_variance_initializer: initConfig(this.movingVarianceInit),
    };
  }

  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    const name = this.name!;
    const C = x.shape[x.shape.length - 1];
    const init = (i: PlainInit) => (i.kind === 'glorot_uniform' ? { kind: 'glorot_uniform' as const, fanIn: C, fanOut: C } : i);
    const runningMean = env.persistent(`${name}/moving_mean`, [C], init(this.movingMeanInit));
    const runningVar = env.persistent(`${name}/moving_variance`, [C], init(this.movingVarianceInit));
    return env.g.batchNorm(x, { runningMean, runningVar, ...this.affine(env, C) },
      { epsilon: this.epsilon, momentum: this.momentum, training: env.training }, name);
  }
}

/** Keras LayerNormalization over the last axis: each example's (each position's) features normalized. */
export class LayerNormalization extends Normalization {
  readonly className = 'LayerNormalization';

  constructor(o: NormalizationOptions = {}) {
    super(o, 'LayerNormalization');
  }

  emit(env: BuildEnv, [x]: Tensor[]): Tensor {
    const C = x.shape[x.shape.length - 1];
    return env.g.layerNorm(x, this.affine(env, C), this.epsilon, this.name!);
  }
}

export interface EmbeddingOptions extends LayerOptions {
  /** Vocabulary size: ids are 0 .. inputDim − 1. */
  inputDim: number;
  /** Width of each id's vector. */
  outputDim: number;
  /** Default RandomUniform(−0.05, 0.05) (Keras). */
  embeddingsInitializer?: LayerInit;
}

/**
 * Keras Embedding: integer ids (T) → (T, outputDim), the table `<layer>/embeddings` [inputDim,
 * outputDim]. It reads the model input, which then holds ids (u32 on the GPU): the data's values
 * must be integers in 0 .. inputDim − 1, checked when a batch is written.
 */
export class Embedding extends Layer {
  readonly className = 'Embedding';
  readonly inputDim: number;
  readonly outputDim: number;
  readonly embeddingsInit: PlainInit;

  constructor(o: EmbeddingOptions) {
    super(o);
    this.inputDim = checkPositiveInt(o.inputDim, 'Embedding input_dim');
    this.outputDim = checkPositiveInt(o.outputDim, 'Embedding output_dim');
    this.embeddingsInit = plainInit(o.embeddingsInitializer ?? { kind: 'uniform', limit: 0.05 });
  }

  outputShape([s]: (readonly number[])[]): number[] {
    if (s.length < 1) throw new Error(`needs ids of shape (timesteps), got ${shapeText(s)}`);
    return [...s, this.outputDim];
  }

  override paramCount(): number {
    return this.inputDim * this.outputDim;
  }

  config() {
    return { input_dim: this.inputDim, output_dim: this.outputDim, embeddings_initializer: initConfig(this.embeddingsInit) };
  }

  emit(env: BuildEnv, [ids]: Tensor[]): Tensor {
    const i = this.embeddingsInit;
    const init = i.kind === 'glorot_uniform' ? { kind: 'glorot_uniform' as const, fanIn: this.inputDim, fanOut: this.outputDim } : i;
    const table = env.param(`${this.name}/embeddings`, [this.inputDim, this.outputDim], init);
    return env.g.embedding(ids, table, this.name);
  }
}

/** A BatchNormalization layer (Keras defaults: momentum 0.99, epsilon 1e-3). */
export const batchNorm = (o: BatchNormalizationOptions = {}) => new BatchNormalization(o);
/** A LayerNormalization layer over the last axis (epsilon 1e-3). */
export const layerNorm = (o: NormalizationOptions = {}) => new LayerNormalization(o);
/** An Embedding layer: integer ids [B, T] to vectors [B, T, output_dim]. */
export const embedding = (o: EmbeddingOptions) => new Embedding(o);
