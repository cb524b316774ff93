// The five networks of the user's MNIST tutorials (shared/reference/seed-nets.md), built on a Graph.
import { Graph, GraphError } from '../graph/graph.js';
import type { Tensor } from '../graph/tensor.js';
import type { RecurrentCell } from '../kernels/recurrent.js';
import { GATE_COUNT } from '../kernels/recurrent.js';
import type { ParamStore, Init } from './params.js';

export type NetKind = 'softmax' | 'bp' | 'mlp' | 'cnn' | 'rnn';

export interface NetConfig {
  net: NetKind;
  /** Hidden width: bp/mlp hidden layer, cnn dense layer, rnn units. */
  hidden?: number;
  /** mlp hidden layers, rnn stacked cells. */
  layers?: number;
  cell?: RecurrentCell;
  /** Dropout keep probability in training (cnn: after the dense layer; mlp: after each hidden layer; rnn: between cells). */
  keepProb?: number;
  seed: number;
}

/** How a batch of images is laid out in the input tensor. */
export type InputLayout = 'rows' | 'time-major';

export interface BuiltNet {
  graph: Graph;
  /** Images: [B, 784] ('rows', also viewed as [B, 28, 28, 1] by the cnn) or [28, B, 28] ('time-major'). */
  x: Tensor;
  layout: InputLayout;
  labels: Tensor;
  logits: Tensor;
  loss: Tensor;
  lossSum: Tensor;
  predictions: Tensor;
  correct: Tensor;
}

export const IMAGE = { rows: 28, cols: 28, classes: 10 } as const;

/** Builds a net's graph for a batch size; `training` turns dropout on. Parameters come from (and go to) `store`. */
export function buildNet(cfg: NetConfig, store: ParamStore, batch: number, training: boolean): BuiltNet {
  const g = new Graph(`${cfg.net}${training ? ' train' : ' eval'} b${batch}`);
  const { rows: R, cols: C, classes: K } = IMAGE;
  const P = (name: string, shape: number[], init: Init) => g.param(name, shape, store.get(name, shape, init));
  const keep = training ? (cfg.keepProb ?? 1) : 1;
  const layout: InputLayout = cfg.net === 'rnn' ? 'time-major' : 'rows';
  const x = layout === 'rows' ? g.input('images', [batch, R * C]) : g.input('images', [R, batch, C]);
  const labels = g.input('labels', [batch], 'u32');
  let logits: Tensor;

  switch (cfg.net) {
    case 'softmax': {
      // One dense layer 784 -> 10 (tutorial: zeros).
      logits = g.dense(x, P('softmax/w', [R * C, K], { kind: 'zeros' }), P('softmax/b', [K], { kind: 'zeros' }), 'none', 'softmax');
      break;
    }
    case 'bp': {
      // 784 -> H sigmoid -> 10, weights normal * 0.01 (TwoLayerNet(weight_init_std=0.01)), biases 0.
      const H = cfg.hidden ?? 50;
      const h = g.dense(x, P('bp/w1', [R * C, H], { kind: 'normal', std: 0.01 }), P('bp/b1', [H], { kind: 'zeros' }), 'sigmoid', 'hidden');
      logits = g.dense(h, P('bp/w2', [H, K], { kind: 'normal', std: 0.01 }), P('bp/b2', [K], { kind: 'zeros' }), 'none', 'output');
      break;
    }
    case 'mlp': {
      // 784 -> H relu (× layers) -> 10, weights normal(0, 0.05), biases 0.
      const H = cfg.hidden ?? 256;
      let h = x;
      let inSize = R * C;
      for (let l = 0; l < (cfg.layers ?? 1); l++) {
        h = g.dense(h, P(`mlp/w${l + 1}`, [inSize, H], { kind: 'normal', std: 0.05 }), P(`mlp/b${l + 1}`, [H], { kind: 'zeros' }), 'relu', `hidden${l + 1}`);
        h = g.dropout(h, keep, cfg.seed, `dropout${l + 1}`);
        inSize = H;
      }
      logits = g.dense(h, P('mlp/w_out', [inSize, K], { kind: 'normal', std: 0.05 }), P('mlp/b_out', [K], { kind: 'zeros' }), 'none', 'output');
      break;
    }
    case 'cnn': {
      // conv5x5x32 SAME relu, maxpool 2x2/2, conv5x5x64 SAME relu, maxpool 2x2/2, dense 3136 -> H relu,
      // dropout, dense H -> 10; weights truncated normal std 0.1, biases 0.1 (the tutorial's).
      const H = cfg.hidden ?? 1024;
      const W = (name: string, shape: number[]) => P(name, shape, { kind: 'truncated_normal', std: 0.1 });
      const Bc = (name: string, n: number) => P(name, [n], { kind: 'const', value: 0.1 });
      const img = g.reshape(x, [batch, R, C, 1], 'image');
      let h = g.conv2d(img, W('cnn/conv1/w', [5, 5, 1, 32]), Bc('cnn/conv1/b', 32), { padding: 'SAME', activation: 'relu' }, 'conv1');
      h = g.maxPool(h, { size: 2, stride: 2, padding: 'SAME' }, 'pool1');
      h = g.conv2d(h, W('cnn/conv2/w', [5, 5, 32, 64]), Bc('cnn/conv2/b', 64), { padding: 'SAME', activation: 'relu' }, 'conv2');
      h = g.maxPool(h, { size: 2, stride: 2, padding: 'SAME' }, 'pool2');
      const flat = g.reshape(h, [batch, h.size / batch], 'flatten');
      let d = g.dense(flat, W('cnn/fc1/w', [flat.shape[1], H]), Bc('cnn/fc1/b', H), 'relu', 'fc1');
      d = g.dropout(d, keep, cfg.seed, 'dropout');
      logits = g.dense(d, W('cnn/fc2/w', [H, K]), Bc('cnn/fc2/b', K), 'none', 'fc2');
      break;
    }
    case 'rnn': {
      // LSTM (or GRU / basic RNN) over 28 rows of 28 pixels, last output -> dense 10; Glorot uniform,
      // forget bias 1.0 added in the cell (TF BasicLSTMCell), biases 0.
      const cell = cfg.cell ?? 'lstm';
      const H = cfg.hidden ?? 128;
      const L = cfg.layers ?? 1;
      const G = GATE_COUNT[cell];
      const weights: { w: Tensor; b: Tensor }[] = [];
      let inSize: number = C;
      for (let l = 0; l < L; l++) {
        weights.push({
          w: P(`rnn/${cell}${l}/w`, [inSize + H, G * H], { kind: 'glorot_uniform', fanIn: inSize + H, fanOut: G * H }),
          b: P(`rnn/${cell}${l}/b`, [G * H], { kind: 'zeros' }),
        });
        inSize = H;
      }
      const last = g.recurrent(x, weights, { cell, hidden: Array(L).fill(H), forgetBias: 1.0, keepProb: keep, seed: cfg.seed, output: 'last' }, cell);
      logits = g.dense(last, P('rnn/out/w', [H, K], { kind: 'glorot_uniform', fanIn: H, fanOut: K }), P('rnn/out/b', [K], { kind: 'zeros' }), 'none', 'output');
      break;
    }
    default:
      throw new GraphError(`unknown net "${(cfg as { net: string }).net}" (choose softmax, bp, mlp, cnn or rnn)`);
  }
  const { loss, lossSum } = g.softmaxCrossEntropy(logits, labels);
  const { predictions, correct } = g.accuracy(logits, labels);
  return { graph: g, x, layout, labels, logits, loss, lossSum, predictions, correct };
}

/** Copies images [n, 784] (rows from `index`) into a batch in the net's layout, zero-padding past `count`. */
export function fillBatch(layout: InputLayout, images: Float32Array, index: ArrayLike<number>, count: number, out: Float32Array, batch: number): void {
  const P = IMAGE.rows * IMAGE.cols;
  if (layout === 'rows') {
    for (let b = 0; b < batch; b++) {
      if (b < count) out.set(images.subarray(index[b] * P, index[b] * P + P), b * P);
      else out.fill(0, b * P, b * P + P);
    }
    return;
  }
  // time-major [T = rows, B, I = cols]: step t reads image row t
  const T = IMAGE.rows, I = IMAGE.cols;
  for (let b = 0; b < batch; b++) {
    const src = b < count ? index[b] * P : -1;
    for (let t = 0; t < T; t++) {
      const dst = (t * batch + b) * I;
      if (src < 0) out.fill(0, dst, dst + I);
      else out.set(images.subarray(src + t * I, src + t * I + I), dst);
    }
  }
}
