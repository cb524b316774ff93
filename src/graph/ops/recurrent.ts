// recurrent: stacked LSTM / GRU / basic RNN layers over a time-major x [T, B, I]; weights per layer
// w_l [in+H, G·H], b_l [G·H] (layout in src/kernels/recurrent.ts). The sequence state of every
// layer is planned like any tensor; the output is a view into the top layer's h. Its backward is
// two nodes: through time, then the bottom layer's weight gradients (see `split`).
import type { OpNode, OpRule } from '../registry.js';
import { GraphError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { prepareDropout } from '../../kernels/dropout.js';
import { GATE_COUNT, prepareRecurrentStack, type RecurrentCell } from '../../kernels/recurrent.js';

/** Options of a recurrent stack in the graph. */
export interface RecurrentOptions {
  cell: RecurrentCell;
  /** Hidden size per layer, bottom first. */
  hidden: number[];
  forgetBias?: number;
  /** Dropout keep probability between stacked layers (training only), and the masks' seed. */
  keepProb?: number;
  seed?: number;
  /** 'last': output the last step's h [B, H]; 'all': every step's h [T, B, H]. */
  output?: 'last' | 'all';
}

/** stream: the node's index when built (the inter-layer dropout masks' RNG stream). */
export type RecurrentAttrs = Omit<RecurrentOptions, 'output'> & { name: string; output: 'last' | 'all'; stream: number };

/** One layer's planned sequence state. */
export interface RecurrentState {
  h: Tensor;
  c?: Tensor;
  gates: Tensor;
  rh?: Tensor;
}

/** The state tensors of each layer, from the node's outputs: per layer h, c (LSTM), gates, r⊙h (GRU); then y. */
export function recurrentState(n: { outputs: readonly Tensor[]; attrs: RecurrentAttrs }): RecurrentState[] {
  const { cell, hidden } = n.attrs;
  let k = 0;
  return hidden.map(() => ({
    h: n.outputs[k++],
    c: cell === 'lstm' ? n.outputs[k++] : undefined,
    gates: n.outputs[k++],
    rh: cell === 'gru' ? n.outputs[k++] : undefined,
  }));
}

export const recurrent: OpRule<RecurrentAttrs> = {
  op: 'recurrent',
  title: 'recurrent',

  shape(s, a) {
    const [x, ...wb] = s.inputs;
    if (x.shape.length !== 3) s.fail('x must be 3-D [time, batch, features] (time-major)');
    const L = a.hidden.length;
    if (wb.length !== 2 * L) s.fail(`${L} layers need ${L} weight pairs`);
    const G = GATE_COUNT[a.cell];
    let inSize = x.shape[2];
    a.hidden.forEach((H, l) => {
      const [w, b] = [wb[2 * l], wb[2 * l + 1]];
      if (w.shape.length !== 2 || w.shape[0] !== inSize + H || w.shape[1] !== G * H) s.fail(`layer ${l} w must be [${inSize + H}, ${G * H}]`);
      if (b.shape.length !== 1 || b.shape[0] !== G * H) s.fail(`layer ${l} b must be [${G * H}]`);
      inSize = H;
    });
    const [T, B] = x.shape;
    // h and c [(T+1)·B·H] (slot 0 the initial state), the gates z [T·B·G·H] (LSTM and RNN write
    // their gate gradients over them in backward), GRU's r⊙h.
    const layers: RecurrentState[] = a.hidden.map((H, l) => {
      const S = (what: string, n: number) => s.tensor(`${s.name}/layer${l}/${what}`, [n]);
      return {
        h: S('h', (T + 1) * B * H),
        c: a.cell === 'lstm' ? S('c', (T + 1) * B * H) : undefined,
        gates: S('gates', T * B * G * H),
        rh: a.cell === 'gru' ? S('r*h', T * B * H) : undefined,
      };
    });
    const state = layers.flatMap((l) => [l.h, l.c, l.gates, l.rh].filter((t): t is Tensor => !!t));
    const H = a.hidden[L - 1];
    const hTop = layers[L - 1].h;
    const y = s.tensor(`${s.name}/${a.output === 'last' ? 'last_h' : 'outputs'}`, a.output === 'last' ? [B, H] : [T, B, H]);
    y.viewOf = hTop;
    y.viewOffset = a.output === 'last' ? T * B * H : B * H;
    return [...state, y];
  },

  gradient: {
    kind: 'kernel',
    saves: (n) => [...n.inputs, ...n.outputs.slice(0, -1)], // x, weights and the sequence state
    // LSTM and RNN: the gate gradients overwrite the gates (see the lowering).
    temps: (n) => (n.attrs.cell === 'gru' ? [] : recurrentState(n).map((s) => ({ name: `d(${s.gates.name})`, shape: [...s.gates.shape], inPlaceOf: s.gates }))),
    // The bottom layer's dW, db and dX follow the backward through time, when the cell states are
    // dead (their memory can then hold the weight gradient).
    split(n, temps) {
      const [x, w0] = n.inputs;
      const s = recurrentState(n)[0];
      const dz = temps.find((t) => t.viewOf === s.gates); // in place over the gates (LSTM, RNN); GRU's is the stack's own
      return { inputs: [0, 1, 2], reads: [x, w0, s.h, ...(s.rh ? [s.rh] : []), ...(dz ? [dz] : [])] };
    },
  },

  lower(env, n: OpNode<RecurrentAttrs>, grad) {
    const [x, ...wb] = n.inputs;
    const { cell, hidden, name } = n.attrs;
    const L = hidden.length;
    const [T, B, I] = x.shape;
    const y = n.outputs[n.outputs.length - 1];
    const state = recurrentState(n);
    const grads = grad?.grads ?? [];
    const dyT = grad?.dOutputs[n.outputs.length - 1];
    const keepProb = n.attrs.keepProb ?? 1;
    const stack = prepareRecurrentStack(env.ctx, {
      cell, T, B, I, hidden,
      forgetBias: n.attrs.forgetBias,
      gradFrom: n.attrs.output === 'last' ? 'last' : 'all',
      inputGrad: !!grads[0],
      dropout: L > 1 && keepProb < 1,
      label: name,
    }, {
      x: env.buf(x), xOffset: env.offset(x),
      dy: dyT ? env.buf(dyT) : undefined,
      dx: grads[0] ? env.buf(grads[0]) : undefined,
      params: Array.from({ length: L }, (_, l) => {
        const s = state[l];
        const z = env.buf(s.gates);
        return {
          w: env.buf(wb[2 * l]), b: env.buf(wb[2 * l + 1]),
          dw: grads[1 + 2 * l] ? env.buf(grads[1 + 2 * l]!) : undefined,
          db: grads[2 + 2 * l] ? env.buf(grads[2 + 2 * l]!) : undefined,
          h: env.buf(s.h), c: s.c && env.buf(s.c), rh: s.rh && env.buf(s.rh),
          // LSTM and RNN write their gate gradients over the gates; GRU's backward still reads them.
          z, dz: cell === 'gru' ? undefined : z,
        };
      }),
    });
    if (env.buf(y) !== stack.output.buffer) throw new GraphError(`${name}: the recurrent output is not in the planned h buffer`);
    if (L > 1 && keepProb < 1) {
      // Fill each inter-layer mask (0 or 1/keep) from the GPU RNG before the stack runs: dropout of ones.
      const ones = env.ctx.upload(new Float32Array(Math.max(...stack.masks.map((m) => m.size / 4))).fill(1), `${name} ones`);
      const pre = stack.masks.map((m, l) => {
        const count = T * B * hidden[l];
        const scratch = env.ctx.storage(count * 4, `${name} mask ${l} scratch`);
        return prepareDropout(env.ctx, { n: count, keepProb, seed: n.attrs.seed ?? 1, stream: (n.attrs.stream << 8) + l, label: `${name} dropout mask ${l}` },
          { x: ones, y: m, mask: scratch, step: env.step });
      });
      stack.forward.unshift(...pre);
    }
    if (!grad) return { forward: stack.forward };
    // Split in two nodes: through time, then the bottom layer's gradients (its last dispatches).
    const k = stack.bottomGradientDispatches;
    const backward = grad.parts === 2 ? [stack.backward.slice(0, -k), stack.backward.slice(-k)] : [stack.backward];
    return { forward: stack.forward, backward };
  },
};
