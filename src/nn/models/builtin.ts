// The five networks of the user's MNIST tutorials (shared/reference/seed-nets.md) as ordinary
// models, with their training defaults. Each gives exactly the graph the engine built for it
// before models existed: the same parameter names (checkpoints and the seeded inits carry over),
// the tutorials' inits, and the same op order (dropout streams are node indices).
import type { RecurrentCell } from '../../kernels/recurrent.js';
import { Model, sequential } from '../model.js';
import { Dropout, conv2d, dense, flatten, gru, lstm, maxPool2d, reshape, simpleRnn, type Layer } from '../layers.js';

/** The built-in nets: the one list the CLI, the tools and the demo take their names from. */
export const NET_KINDS = ['softmax', 'bp', 'mlp', 'cnn', 'rnn'] as const;
/** The name of a built-in MNIST network (one of NET_KINDS). */
export type NetKind = (typeof NET_KINDS)[number];

/** The knobs of the built-in nets (the CLI flags --hidden, --layers, --cell, --keep-prob). */
export interface NetKnobs {
  /** Hidden width: bp/mlp hidden layer, cnn dense layer, rnn units. */
  hidden?: number;
  /** mlp hidden layers, rnn stacked cells. */
  layers?: number;
  cell?: RecurrentCell;
  /** Dropout keep probability in training (cnn: after the dense layer; mlp: after each hidden layer; rnn: between cells). */
  keepProb?: number;
}

export type OptimizerName = 'sgd' | 'adam';

/** How long a net trains by default: whole epochs, or a number of steps (batches). */
export type Budget = { epochs: number } | { steps: number };

export interface NetDefaults extends NetKnobs {
  /** One line for --help. */
  description: string;
  budget: Budget;
  batch: number;
  lr: number;
  optimizer: OptimizerName;
}

/** The MNIST images the built-in nets read: 28x28 pixels in [0, 1], 10 classes. */
export const IMAGE = { rows: 28, cols: 28, classes: 10 } as const;

/**
 * THE per-net defaults: the tutorials' architecture and optimizer (../shared/reference/seed-nets.md),
 * with the training length chosen to reach the target test accuracy. Tune epochs/steps here.
 * A knob left undefined is one the net does not have (the CLI rejects its flag).
 * - softmax: the tutorial's SGD lr 0.01 / batch 50 needs ~150 epochs for 0.907. SGD lr 0.2 / batch 100,
 *   zero init: a float64 CPU run of this recipe gave test 0.9202 at epoch 5, 0.9234 at 10, 0.920-0.923
 *   up to 18 (the plateau of a linear model is ~0.925, so the 0.92 target has little margin).
 * - bp: 784-50 sigmoid-10 with plain SGD on the batch-MEAN loss; lr 0.5 instead of the doc's 0.1 (the
 *   doc's hand-written backprop sums over the batch). CPU run (W1 normal*0.1, W2 normal*0.1): test
 *   0.9531 at epoch 6, 0.9610 at 10.
 * - mlp: 784-256 relu-10, Adam 1e-3, batch 100 (target 0.978).
 * - cnn: the "deep MNIST" net, batch 50, keep 0.5 (target 0.990). The tutorial's Adam 1e-4 for 20,000 steps
 *   takes ~2.4 h here; Adam 1e-3 for 5,000 steps (4.5 epochs) gave test 0.9901 in 48 min (validation
 *   0.9844, 0.9906, 0.9910, 0.9928 after epochs 1-4). `--lr 1e-4 --steps 20000` is the tutorial's run.
 * - rnn: LSTM 128 over 28 rows of 28 pixels, Adam 1e-3, batch 100 (target 0.985).
 */
export const NET_DEFAULTS: Record<NetKind, NetDefaults> = {
  softmax: { description: 'one dense layer 784-10, softmax', budget: { epochs: 10 }, batch: 100, lr: 0.2, optimizer: 'sgd' },
  bp: { description: '784-50 sigmoid-10 softmax, plain SGD', budget: { epochs: 10 }, batch: 100, lr: 0.5, optimizer: 'sgd', hidden: 50 },
  mlp: { description: '784-256 relu-10', budget: { epochs: 15 }, batch: 100, lr: 1e-3, optimizer: 'adam', hidden: 256, layers: 1, keepProb: 1 },
  cnn: { description: 'conv5x5x32-pool-conv5x5x64-pool-dense1024-dropout-10', budget: { steps: 5000 }, batch: 50, lr: 1e-3, optimizer: 'adam', hidden: 1024, keepProb: 0.5 },
  rnn: { description: 'LSTM 128 over 28 rows of 28 pixels, last output-10', budget: { steps: 10000 }, batch: 100, lr: 1e-3, optimizer: 'adam', hidden: 128, layers: 1, cell: 'lstm', keepProb: 1 },
};

/** A Dropout layer for a keep probability, keeping that exact probability (1 − (1 − p) need not be p). */
const keepDropout = (keepProb: number, name: string): Layer => new Dropout({ rate: 1 - keepProb, keepProb, name });

const R = IMAGE.rows, C = IMAGE.cols, K = IMAGE.classes;

/**
 * The built-in net `net` as a model. Knobs left undefined take the net's own default; note that the
 * model-level defaults are the tutorials' (e.g. no dropout unless keepProb < 1), as before models.
 */
export function builtinModel(net: NetKind, knobs: NetKnobs = {}): Model {
  const keep = knobs.keepProb ?? 1;
  switch (net) {
    case 'softmax':
      // One dense layer 784 -> 10 (tutorial: zeros).
      return sequential([R * C], [
        dense({ units: K, activation: 'softmax', name: 'softmax', kernelInitializer: 'zeros', paramNames: { kernel: 'softmax/w', bias: 'softmax/b' } }),
      ], { name: 'softmax' });
    case 'bp': {
      // 784 -> H sigmoid -> 10, weights normal * 0.01 (TwoLayerNet(weight_init_std=0.01)), biases 0.
      const H = knobs.hidden ?? 50;
      const w = { kind: 'normal', std: 0.01 } as const;
      return sequential([R * C], [
        dense({ units: H, activation: 'sigmoid', name: 'hidden', kernelInitializer: w, paramNames: { kernel: 'bp/w1', bias: 'bp/b1' } }),
        dense({ units: K, activation: 'softmax', name: 'output', kernelInitializer: w, paramNames: { kernel: 'bp/w2', bias: 'bp/b2' } }),
      ], { name: 'bp' });
    }
    case 'mlp': {
      // 784 -> H relu (× layers) -> 10, weights normal(0, 0.05), biases 0.
      const H = knobs.hidden ?? 256;
      const w = { kind: 'normal', std: 0.05 } as const;
      const layers: Layer[] = [];
      for (let l = 1; l <= (knobs.layers ?? 1); l++) {
        layers.push(dense({ units: H, activation: 'relu', name: `hidden${l}`, kernelInitializer: w, paramNames: { kernel: `mlp/w${l}`, bias: `mlp/b${l}` } }));
        if (keep < 1) layers.push(keepDropout(keep, `dropout${l}`));
      }
      layers.push(dense({ units: K, activation: 'softmax', name: 'output', kernelInitializer: w, paramNames: { kernel: 'mlp/w_out', bias: 'mlp/b_out' } }));
      return sequential([R * C], layers, { name: 'mlp' });
    }
    case 'cnn': {
      // conv5x5x32 SAME relu, maxpool 2x2/2, conv5x5x64 SAME relu, maxpool 2x2/2, dense 3136 -> H relu,
      // dropout, dense H -> 10; weights truncated normal std 0.1, biases 0.1 (the tutorial's).
      const H = knobs.hidden ?? 1024;
      const w = { kind: 'truncated_normal', std: 0.1 } as const;
      const b = { kind: 'const', value: 0.1 } as const;
      const p = (name: string) => ({ kernelInitializer: w, biasInitializer: b, paramNames: { kernel: `cnn/${name}/w`, bias: `cnn/${name}/b` }, name });
      const layers: Layer[] = [
        reshape({ targetShape: [R, C, 1], name: 'image' }),
        conv2d({ filters: 32, kernelSize: 5, padding: 'same', activation: 'relu', ...p('conv1') }),
        maxPool2d({ poolSize: 2, strides: 2, padding: 'same', name: 'pool1' }),
        conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu', ...p('conv2') }),
        maxPool2d({ poolSize: 2, strides: 2, padding: 'same', name: 'pool2' }),
        flatten({ name: 'flatten' }),
        dense({ units: H, activation: 'relu', ...p('fc1') }),
      ];
      if (keep < 1) layers.push(keepDropout(keep, 'dropout'));
      layers.push(dense({ units: K, activation: 'softmax', ...p('fc2') }));
      return sequential([R * C], layers, { name: 'cnn' });
    }
    case 'rnn': {
      // LSTM (or GRU / basic RNN) over 28 rows of 28 pixels, last output -> dense 10; Glorot uniform,
      // forget bias 1.0 added in the cell (TF BasicLSTMCell), biases 0. Stacked cells are one stack.
      const cell = knobs.cell ?? 'lstm';
      const H = knobs.hidden ?? 128;
      const L = knobs.layers ?? 1;
      const make = { lstm, gru, rnn: simpleRnn }[cell];
      const layers: Layer[] = [];
      for (let l = 0; l < L; l++) {
        if (l > 0 && keep < 1) layers.push(keepDropout(keep, `dropout${l}`));
        layers.push(make({ units: H, returnSequences: l < L - 1, name: l === 0 ? cell : `${cell}${l}`, paramNames: { kernel: `rnn/${cell}${l}/w`, bias: `rnn/${cell}${l}/b` } }));
      }
      layers.push(dense({ units: K, activation: 'softmax', name: 'output', paramNames: { kernel: 'rnn/out/w', bias: 'rnn/out/b' } }));
      return sequential([R, C], layers, { name: 'rnn' });
    }
    default:
      throw new RangeError(`unknown net "${net as string}" (choose softmax, bp, mlp, cnn or rnn)`);
  }
}
