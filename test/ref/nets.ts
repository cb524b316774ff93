// Float64 CPU models of the mlp, cnn and rnn of src/nn/nets.ts: forward (with dropout when given
// masks), softmax cross-entropy (batch mean) and backward to every parameter's gradient. Shared by
// the autodiff test (evaluation graph, no dropout) and the training-step test (dropout, optimizer).
import { matmulRef, type Act } from '../support/cpu.js';
import { conv2dRef, conv2dBackwardRef, type ConvShape } from './conv2d.js';
import { maxPoolRef, maxPoolBackwardRef, type PoolShape } from './pool.js';
import { stackForwardRef, stackBackwardRef, type Cell } from './recurrent.js';
import { softmaxXentRef } from './softmax-xent.js';
import { activationDerivFromOutput } from './activation.js';
import { IMAGE } from '../../src/nn/nets.js';

const K = IMAGE.classes;

export type Weights = Record<string, Float64Array>;

export interface CpuResult {
  /** Batch-mean softmax cross-entropy. */
  loss: number;
  grads: Weights;
}

/**
 * Dropout masks as the models take them: one value per unit, 0 (dropped) or 1/keep (kept), i.e.
 * the inverted-dropout factor the unit's output is multiplied by (forward) and its gradient too (backward).
 */
export type ScaledMask = ArrayLike<number>;

// ------------------------------------------------------------------ pieces

function denseForward(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, B: number, In: number, Out: number, act: Act): Float64Array {
  return matmulRef(x, w, B, Out, In, { bias: b, act });
}

/** Gradients of a dense layer y = act(x·w + b) from dL/dy, through the forward output y. */
function denseBackward(x: ArrayLike<number>, w: ArrayLike<number>, y: ArrayLike<number>, dy: ArrayLike<number>, B: number, In: number, Out: number, act: Act) {
  const dz = new Float64Array(B * Out);
  for (let i = 0; i < dz.length; i++) dz[i] = dy[i] * activationDerivFromOutput(y[i], act);
  const dw = matmulRef(x, dz, In, Out, B, { transA: true });
  const db = new Float64Array(Out);
  for (let r = 0; r < B; r++) for (let j = 0; j < Out; j++) db[j] += dz[r * Out + j];
  const dx = matmulRef(dz, w, B, In, Out, { transB: true });
  return { dx, dw, db };
}

function reluBackward(y: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const dz = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) dz[i] = y[i] > 0 ? dy[i] : 0;
  return dz;
}

/** x ⊙ mask (a copy; no mask: x itself as float64). */
function applyMask(x: ArrayLike<number>, mask: ScaledMask | undefined): Float64Array {
  const y = Float64Array.from(x);
  if (mask) {
    if (mask.length !== y.length) throw new Error(`dropout mask has ${mask.length} values for ${y.length} units`);
    for (let i = 0; i < y.length; i++) y[i] *= mask[i];
  }
  return y;
}

// ------------------------------------------------------------------ the nets

/** 784 → H relu (× layers, each followed by dropout with masks[l] when given) → 10. x [B, 784]. */
export function mlpCpu(W: Weights, x: ArrayLike<number>, labels: ArrayLike<number>, B: number, H: number, layers: number, masks?: ScaledMask[]): CpuResult {
  const grads: Weights = {};
  const acts: Float64Array[] = [];     // relu outputs of each hidden layer
  const inputs: Float64Array[] = [Float64Array.from(x)]; // what each dense layer reads (after dropout)
  let inSize = IMAGE.rows * IMAGE.cols;
  const sizes: number[] = [];
  for (let l = 1; l <= layers; l++) {
    sizes.push(inSize);
    const y = denseForward(inputs[l - 1], W[`mlp/w${l}`], W[`mlp/b${l}`], B, inSize, H, 'relu');
    acts.push(y);
    inputs.push(applyMask(y, masks?.[l - 1]));
    inSize = H;
  }
  const logits = denseForward(inputs[layers], W['mlp/w_out'], W['mlp/b_out'], B, H, K, 'none');
  const xent = softmaxXentRef(logits, labels, B, K);
  let g = denseBackward(inputs[layers], W['mlp/w_out'], logits, xent.grad, B, H, K, 'none');
  grads['mlp/w_out'] = g.dw;
  grads['mlp/b_out'] = g.db;
  for (let l = layers; l >= 1; l--) {
    const dy = applyMask(g.dx, masks?.[l - 1]);
    g = denseBackward(inputs[l - 1], W[`mlp/w${l}`], acts[l - 1], dy, B, sizes[l - 1], H, 'relu');
    grads[`mlp/w${l}`] = g.dw;
    grads[`mlp/b${l}`] = g.db;
  }
  return { loss: xent.mean, grads };
}

/** conv5x5x32-pool-conv5x5x64-pool-dense H relu-(dropout with `mask`)-dense 10. x [B, 784] = NHWC [B, 28, 28, 1]. */
export function cnnCpu(W: Weights, x: ArrayLike<number>, labels: ArrayLike<number>, B: number, H: number, mask?: ScaledMask): CpuResult {
  const R = IMAGE.rows, C = IMAGE.cols;
  const c1: ConvShape = { batch: B, inH: R, inW: C, inC: 1, kH: 5, kW: 5, outC: 32, strideH: 1, strideW: 1, padding: 'SAME' };
  const p1: PoolShape = { batch: B, inH: R, inW: C, channels: 32, kH: 2, kW: 2, strideH: 2, strideW: 2, padding: 'SAME' };
  const c2: ConvShape = { batch: B, inH: 14, inW: 14, inC: 32, kH: 5, kW: 5, outC: 64, strideH: 1, strideW: 1, padding: 'SAME' };
  const p2: PoolShape = { batch: B, inH: 14, inW: 14, channels: 64, kH: 2, kW: 2, strideH: 2, strideW: 2, padding: 'SAME' };
  const F = 7 * 7 * 64;
  const y1 = conv2dRef(c1, x, W['cnn/conv1/w'], W['cnn/conv1/b'], 'relu');
  const q1 = maxPoolRef(p1, y1).y;
  const y2 = conv2dRef(c2, q1, W['cnn/conv2/w'], W['cnn/conv2/b'], 'relu');
  const q2 = maxPoolRef(p2, y2).y; // NHWC [B, 7, 7, 64] is the flattened [B, 3136]
  const d1 = denseForward(q2, W['cnn/fc1/w'], W['cnn/fc1/b'], B, F, H, 'relu');
  const dropped = applyMask(d1, mask);
  const logits = denseForward(dropped, W['cnn/fc2/w'], W['cnn/fc2/b'], B, H, K, 'none');
  const xent = softmaxXentRef(logits, labels, B, K);

  const g2 = denseBackward(dropped, W['cnn/fc2/w'], logits, xent.grad, B, H, K, 'none');
  const g1 = denseBackward(q2, W['cnn/fc1/w'], d1, applyMask(g2.dx, mask), B, F, H, 'relu');
  const dz2 = reluBackward(y2, maxPoolBackwardRef(p2, y2, g1.dx));
  const gc2 = conv2dBackwardRef(c2, q1, W['cnn/conv2/w'], dz2);
  const dz1 = reluBackward(y1, maxPoolBackwardRef(p1, y1, gc2.dx));
  const gc1 = conv2dBackwardRef(c1, x, W['cnn/conv1/w'], dz1);
  const grads: Weights = {
    'cnn/conv1/w': gc1.dFilter, 'cnn/conv1/b': gc1.dBias, 'cnn/conv2/w': gc2.dFilter, 'cnn/conv2/b': gc2.dBias,
    'cnn/fc1/w': g1.dw, 'cnn/fc1/b': g1.db, 'cnn/fc2/w': g2.dw, 'cnn/fc2/b': g2.db,
  };
  return { loss: xent.mean, grads };
}

/**
 * `layers` stacked cells of H over 28 steps of 28 pixels, the last h → dense 10. x time-major
 * [28, B, 28]; masks[l] (dropout between cell l and l+1) [28, B, H] when given.
 */
export function rnnCpu(W: Weights, x: ArrayLike<number>, labels: ArrayLike<number>, B: number, cell: Cell, H: number, layers: number, masks?: ScaledMask[]): CpuResult {
  const T = IMAGE.rows, I = IMAGE.cols;
  const Hs = Array(layers).fill(H);
  const params = Hs.map((_, l) => ({ w: W[`rnn/${cell}${l}/w`], b: W[`rnn/${cell}${l}/b`] }));
  const fwd = stackForwardRef(cell, T, B, I, Hs, x, params, { forgetBias: 1.0, masks });
  const last = fwd.layers[layers - 1].h.slice(T * B * H); // h after the last step, [B, H]
  const logits = denseForward(last, W['rnn/out/w'], W['rnn/out/b'], B, H, K, 'none');
  const xent = softmaxXentRef(logits, labels, B, K);
  const g = denseBackward(last, W['rnn/out/w'], logits, xent.grad, B, H, K, 'none');
  const grads: Weights = { 'rnn/out/w': g.dw, 'rnn/out/b': g.db };
  const sg = stackBackwardRef(cell, T, B, I, Hs, params, fwd, g.dx, masks);
  sg.forEach((gl, l) => {
    grads[`rnn/${cell}${l}/w`] = gl.dw;
    grads[`rnn/${cell}${l}/b`] = gl.db;
  });
  return { loss: xent.mean, grads };
}
