// Recurrent layers over T time steps, time-major: LSTM (TensorFlow BasicLSTMCell), GRU (TF GRUCell) and the
// basic tanh RNN (TF BasicRNNCell), forward and backward through time, single or stacked (MultiRNNCell)
// with dropout between layers. Everything is prepared once; a training step only encodes the dispatches.
//
// Structure (as cuDNN does it):
//   forward:  ONE matmul z = x·W_x + b for all T steps ([T·B, I]·[I, G·H]); then per step t one matmul
//             z[t] += h_{t-1}·W_h (an element-offset slice of z) and ONE fused elementwise cell kernel
//             (nonlinearities, c and h update, activations kept in z for backward). With a zero initial
//             state step 0 needs no matmul.  LSTM/RNN: 2T dispatches; GRU: 4T (its candidate's matmul
//             needs r first: matmul, gates kernel, matmul of r⊙h, cell kernel). Option `fused` (LSTM):
//             one kernel per step doing both the recurrent matmul and the cell (T + 1 dispatches).
//   backward: per step one fused cell-backward kernel (dz_t, and dc_{t-1} for LSTM) and one matmul
//             dh_{t-1} = dz_t·W_hᵀ (GRU: kernel, matmul, kernel, matmul). LSTM where the matmul takes
//             epilogues (option `cellInMatmul`): the cell backward of step t-1 is that matmul's epilogue,
//             so a step is ONE dispatch (T per direction, plus dL/dh0's matmul for a given state). Then
//             over all steps at once:
//             dW_x = xᵀ·dZ and dW_h = h_{prev}ᵀ·dZ (GRU: its r|u columns from h_{prev}, its candidate
//             columns from r⊙h_{prev}), db = column sums of dZ (reduce.ts' columnSum: 1 dispatch for
//             T·B rows up to its block size, more above), dX = dZ·W_xᵀ (one matmul each).
//
// Weight layout (the same as TF's single `kernel` variable applied to concat([x, h], 1)):
//   w [I+H, G·H] row-major: rows 0..I-1 are W_x, rows I..I+H-1 are W_h;  b [G·H].
//   Column blocks of H, in TF's split order:
//     LSTM (G=4): i, a, f, o   (TF BasicLSTMCell: `i, j, f, o = split(..., 4)`, a = TF's j); the forget
//                 bias (default 1.0) is a constant added to f's pre-activation, not part of b.
//     GRU  (G=3): r, u, c      (columns 0..2H-1 are TF's gates/kernel [I+H, 2H], columns 2H..3H-1 its
//                 candidate/kernel [I+H, H]); c = tanh(x·W_xc + (r⊙h_{t-1})·W_hc + b_c), r⊙h before the
//                 matmul as TF does; h_t = u⊙h_{t-1} + (1−u)⊙c. TF initialises the r|u bias to 1.0 and
//                 the candidate bias to 0 (an initialiser convention: see `recurrentInit`); b is a plain
//                 trainable bias here.
//     RNN  (G=1): h_t = tanh(x·W_x + h_{t-1}·W_h + b).
// State layout: h [(T+1), B, H]: h[0] is the initial state, h[t+1] the output of step t, so the outputs are
//   the T·B·H elements from offset B·H and the final state the last B·H. LSTM c: the same layout.
import type { GpuContext } from '../gpu/context.js';
import { GpuError } from '../gpu/context.js';
import { ceilDiv, type Dispatch } from '../gpu/dispatch.js';
import type { Kernel } from '../gpu/kernel.js';
import { hasMatmulEpilogue, matmul, matmulSplitK, splitKFactor, splitKPolicy } from './matmul.js';
import { columnSum } from './reduce.js';
import { checkPositive } from './checks.js';
import { elementwiseLanes } from './activation.js';

/** A recurrent cell: LSTM, GRU or a simple tanh RNN. */
export type RecurrentCell = 'lstm' | 'gru' | 'rnn';
/** Gate blocks per cell: the weight matrix has G·H columns. */
export const GATE_COUNT: Record<RecurrentCell, number> = { lstm: 4, gru: 3, rnn: 1 };

export interface RecurrentLayerSpec {
  cell: RecurrentCell;
  /** Time steps, batch, input size, hidden size. */
  T: number;
  B: number;
  I: number;
  H: number;
  /** LSTM: constant added to the forget gate's pre-activation (TF BasicLSTMCell default 1.0). */
  forgetBias?: number;
  /** 'zeros' (default): the forward writes zeros into h[0] (and c[0]). 'given': the caller writes the
   *  initial state into h[0..B·H) and c[0..B·H) before the forward; backward then leaves dL/dh0 in `dh`
   *  and (LSTM) dL/dc0 in `dc`. */
  initialState?: 'zeros' | 'given';
  /** Where the loss gradient comes in: 'all' (many-to-many, default): dy is [T, B, H], one per output;
   *  'last' (many-to-one): dy is [B, H], the gradient of the last output h_{T-1} only. */
  gradFrom?: 'all' | 'last';
  /** Compute dx = dZ·W_xᵀ (default true; false for a first layer fed with data). */
  inputGrad?: boolean;
  /** dw, db += instead of = (default false). */
  accumulateGrads?: boolean;
  /** LSTM: fuse each step's recurrent matmul into its cell kernel (forward and backward), so a step is ONE
   *  dispatch (T + const per direction); the backward first transposes W_h once into a [4H, H] buffer.
   *  Default false: on lavapipe it measured slower than matmul + cell (tools/bench-lstm.ts --fused). */
  fused?: boolean;
  /** LSTM, unfused: run each step's cell as the epilogue of its recurrent product (forward
   *  lstm_fwd_step after h_{t-1}·W_h, backward lstm_bwd_step after dz_{t+1}·W_hᵀ, in
   *  shaders/matmul_subgroup.wgsl), one dispatch per step instead of two, with the same arithmetic.
   *  Default: true unless the backward's product is split (splitRecurrentProduct, a GPU: there the
   *  subgroup kernel's serial walk over K costs more than the extra dispatch). It takes effect only
   *  where the adapter has subgroups (else off). */
  cellInMatmul?: boolean;
  /** LSTM and SimpleRNN: split the backward step's product dh = dz·W_hᵀ over K (matmulSplitK), with
   *  the cell backward then in its own dispatch instead of the product's epilogue. Default: where
   *  splitKPolicy says a split beats an epilogue (a GPU) and the product wants one. A number forces
   *  that many layers of K (tests). */
  splitRecurrentProduct?: boolean | number;
  label?: string;
}

/** Buffers a layer may be given; whatever is not given is allocated (and listed in `owned`). */
export interface RecurrentLayerBuffers {
  /** Input [T, B, I] starting at element xOffset (required). */
  x: GPUBuffer;
  xOffset?: number;
  /** Weights [I+H, G·H] and bias [G·H] (layout above), and their gradients (same shapes). */
  w?: GPUBuffer;
  b?: GPUBuffer;
  dw?: GPUBuffer;
  db?: GPUBuffer;
  /** Output gradient: [T, B, H] (gradFrom 'all') or [B, H] ('last'). */
  dy?: GPUBuffer;
  /** Input gradient [T, B, I], written (not accumulated) at element dxOffset. */
  dx?: GPUBuffer;
  dxOffset?: number;
  /**
   * The sequence state, for callers that plan memory themselves: h and c [(T+1), B, H], gates z
   * [T, B, G·H], GRU r⊙h [T, B, H], and the gate gradients dz [T, B, G·H]. For LSTM and RNN, dz may
   * be the same buffer as z: the cell backward then reads each step's gates from the place where it
   * writes their gradients (z is not needed once they are computed).
   */
  h?: GPUBuffer;
  c?: GPUBuffer;
  z?: GPUBuffer;
  rh?: GPUBuffer;
  dz?: GPUBuffer;
}

export interface RecurrentLayer {
  spec: Readonly<Required<Omit<RecurrentLayerSpec, 'label'>>> & { label: string };
  x: GPUBuffer;
  xOffset: number;
  w: GPUBuffer;
  b: GPUBuffer;
  dw: GPUBuffer;
  db: GPUBuffer;
  dy: GPUBuffer;
  /** Undefined when spec.inputGrad is false. */
  dx: GPUBuffer | undefined;
  /** [(T+1), B, H]: initial state, then the outputs of the T steps (outputs at offset B·H, final at T·B·H). */
  h: GPUBuffer;
  /** LSTM cell states, same layout as h; undefined for GRU and RNN. */
  c: GPUBuffer | undefined;
  /** Element offset of the outputs [T, B, H] in h (= B·H) and of the final state (= T·B·H). */
  outputOffset: number;
  finalOffset: number;
  /** Saved for backward: gate activations [T, B, G·H]; GRU also r⊙h_{t-1} [T, B, H]. */
  z: GPUBuffer;
  rh: GPUBuffer | undefined;
  /** Pre-activation gradients [T, B, G·H]. */
  dz: GPUBuffer;
  /** [B, H] recurrent gradients; after backward with initialState 'given': dL/dh0 (and dL/dc0 for LSTM). */
  dh: GPUBuffer;
  dc: GPUBuffer | undefined;
  forward: Dispatch[];
  backward: Dispatch[];
  /** How many of `backward`'s last dispatches are the parameter and input gradients (dW, db, dX): they
   *  read x, h, dz and w but no longer c or the recurrent gradients. */
  gradientDispatches: number;
  /** Buffers this layer allocated; `releaseRecurrent` frees them. */
  owned: GPUBuffer[];
}

/** Batch rows per invocation of the fused step kernels (TM in shaders/recurrent.wgsl). */
const FUSED_ROWS = 4;
const FUSED_ROWS_BWD = 8; // TMB


function checkSize(op: string, what: string, buf: GPUBuffer, floats: number): void {
  if (buf.size < floats * 4) throw new GpuError(`${op}: ${what} needs ${floats} floats (${floats * 4} bytes), the buffer has ${buf.size} bytes`);
}

/** Binds, out of `all`, the buffers that the entry point uses. */
function bindUsed(kernel: Kernel, all: Record<string, GPUBuffer | undefined>, label: string): GPUBindGroup {
  const used: Record<string, GPUBuffer> = {};
  for (const b of kernel.bindings) {
    const buf = all[b.name];
    if (!buf) throw new GpuError(`${label}: no buffer for ${kernel.label} binding "${b.name}"`);
    used[b.name] = buf;
  }
  return kernel.bind(used, label);
}

function workgroups1d(ctx: GpuContext, op: string, n: number, wg: number): [number, number, number] {
  const x = ceilDiv(n, wg);
  if (x > ctx.limits.maxComputeWorkgroupsPerDimension) throw new GpuError(`${op}: ${n} elements need ${x} workgroups, over the limit ${ctx.limits.maxComputeWorkgroupsPerDimension}`);
  return [x, 1, 1];
}

/** out[offOut + i] = src[offX + i]·mask[i] for i < n: dropout with a mask of 0 or 1/keep. */
export function maskMultiply(ctx: GpuContext, spec: { n: number; offX?: number; offOut?: number; label?: string },
  bufs: { src: GPUBuffer; mask: GPUBuffer; out: GPUBuffer }): Dispatch {
  const op = spec.label ?? `mask ${spec.n}`;
  checkPositive('maskMultiply', { n: spec.n });
  checkSize(op, 'src', bufs.src, (spec.offX ?? 0) + spec.n);
  checkSize(op, 'mask', bufs.mask, spec.n);
  checkSize(op, 'out', bufs.out, (spec.offOut ?? 0) + spec.n);
  const wg = elementwiseLanes(ctx);
  const kernel = ctx.kernel('recurrent.wgsl', 'mask_apply', { WG: wg });
  const up = kernel.params({ n: spec.n, offX: spec.offX ?? 0, offOut: spec.offOut ?? 0 }, op);
  return { kernel, bindGroup: kernel.bind({ up, src: bufs.src, mask: bufs.mask, out: bufs.out }, op), workgroups: workgroups1d(ctx, op, spec.n, wg), label: op, flops: spec.n };
}

/** Whether an LSTM time step can run its cell in the recurrent product's epilogue here (both directions' entry points). */
export function hasLstmStepEpilogues(ctx: GpuContext): boolean {
  return hasMatmulEpilogue(ctx, 'lstm_fwd_step') && hasMatmulEpilogue(ctx, 'lstm_bwd_step');
}

/**
 * Prepares one recurrent layer: its buffers (those not given), its forward dispatches (x → h, c) and its
 * backward dispatches (dy → dw, db, dx, and dh0/dc0). Encode `forward`, then the loss's dispatches that
 * write dy, then `backward`. The backward reads what the latest forward saved (z, h, c, rh).
 */
export function prepareRecurrentLayer(ctx: GpuContext, specIn: RecurrentLayerSpec, bufs: RecurrentLayerBuffers): RecurrentLayer {
  const { cell, T, B, I, H } = specIn;
  const G = GATE_COUNT[cell];
  const name = specIn.label ?? `${cell} T=${T} B=${B} I=${I} H=${H}`;
  if (G === undefined) throw new GpuError(`${name}: unknown cell "${cell}" (lstm, gru or rnn)`);
  checkPositive(`recurrent layer ${name}`, { T, B, I, H });
  // The backward step's dh = dz·W_hᵀ (B x 4H · 4H x H for an LSTM).
  const dhProduct = { M: B, N: H, K: G * H, transB: true };
  // dh's product split over K where that pays more than the fused cell (a GPU).
  const splitRecurrentProduct = cell !== 'gru' && !specIn.fused
    && (specIn.splitRecurrentProduct ?? (splitKPolicy(ctx).overEpilogue && splitKFactor(ctx, dhProduct) > 1));
  const spec = {
    cell, T, B, I, H,
    forgetBias: specIn.forgetBias ?? 1.0,
    initialState: specIn.initialState ?? 'zeros',
    gradFrom: specIn.gradFrom ?? 'all',
    inputGrad: specIn.inputGrad ?? true,
    accumulateGrads: specIn.accumulateGrads ?? false,
    fused: (specIn.fused ?? false) && cell === 'lstm',
    // Where dh's product is split (a GPU), the forward step too is a product, then the cell.
    cellInMatmul: (specIn.cellInMatmul ?? splitRecurrentProduct === false) && cell === 'lstm' && !specIn.fused && hasLstmStepEpilogues(ctx),
    splitRecurrentProduct,
    label: name,
  } as const;
  const GH = G * H, BH = B * H, TB = T * B;
  const splitDh = spec.splitRecurrentProduct !== false;
  const dhSplits = typeof spec.splitRecurrentProduct === 'number' ? spec.splitRecurrentProduct : undefined;
  const backwardCellInMatmul = spec.cellInMatmul && !splitDh;
  const xOffset = bufs.xOffset ?? 0;
  const dxOffset = bufs.dxOffset ?? 0;
  const owned: GPUBuffer[] = [];
  const alloc = (floats: number, what: string, given?: GPUBuffer) => {
    if (given) { checkSize(name, what, given, floats); return given; }
    const buf = ctx.storage(floats * 4, `${name} ${what}`);
    owned.push(buf);
    return buf;
  };
  checkSize(name, `x [${T}, ${B}, ${I}] at offset ${xOffset}`, bufs.x, xOffset + TB * I);
  const x = bufs.x;
  const w = alloc((I + H) * GH, 'w', bufs.w);
  const b = alloc(GH, 'b', bufs.b);
  const dw = alloc((I + H) * GH, 'dw', bufs.dw);
  const db = alloc(GH, 'db', bufs.db);
  const dy = alloc(spec.gradFrom === 'all' ? TB * H : BH, 'dy', bufs.dy);
  const dx = spec.inputGrad ? alloc(dxOffset + TB * I, 'dx', bufs.dx) : undefined;
  const h = alloc((T + 1) * BH, 'h', bufs.h);
  const c = cell === 'lstm' ? alloc((T + 1) * BH, 'c', bufs.c) : undefined;
  const z = alloc(TB * GH, 'z', bufs.z);
  const rh = cell === 'gru' ? alloc(TB * H, 'rh', bufs.rh) : undefined;
  const dz = alloc(TB * GH, 'dz', bufs.dz);
  // Gates and their gradients in one buffer (see RecurrentLayerBuffers.dz).
  const inPlace = dz === z;
  if (inPlace && (cell === 'gru' || spec.fused)) throw new GpuError(`${name}: dz may share z's buffer only for the unfused LSTM and RNN cells`);
  const dh = alloc(BH, 'dh');
  const dc = cell === 'lstm' ? alloc(BH, 'dc') : undefined;
  const drh = cell === 'gru' ? alloc(BH, 'drh') : undefined;
  const wt = spec.fused ? alloc(GH * H, 'W_hᵀ') : undefined;
  // cellInMatmul: W_h with each unit's gate columns side by side (the forward steps' B operand), and
  // step t's h_t (forward) or dz_t (backward) again in [B, G·H] buffers taking turns (t % 2): the next
  // step's matmul reads it while writing h or dz (WebGPU refuses one buffer bound read-only and writable).
  const whi = spec.cellInMatmul ? alloc(GH * H, 'W_h interleaved') : undefined;
  const nextA = spec.cellInMatmul ? [alloc(B * GH, 'next step operand 0'), alloc(B * GH, 'next step operand 1')] : undefined;
  const dummy = ctx.dummyBuffer();

  const wg = elementwiseLanes(ctx);
  const cellBufs = {
    z, hs: h, cs: c ?? dummy, rh: rh ?? dummy, dy, dhr: dh, dc: dc ?? dummy, dz, drh: drh ?? dummy,
    w, wt: wt ?? dummy, wt_out: wt ?? whi ?? dummy, next_a: ctx.dummyBuffer(2),
  };
  type StepFlags = { zeroPrev?: boolean; hasDy?: boolean; hasRec?: boolean; dyOff?: number };
  const kernelStep = (entry: string, t: number, f: StepFlags, constants: Record<string, number | boolean>, workgroups: [number, number, number], flops: number, paramB = B): Dispatch => {
    const kernel = ctx.kernel('recurrent.wgsl', entry, { WG: wg, ...(inPlace && entry === 'lstm_bwd' ? { GATES_IN_DZ: true } : {}), ...constants });
    const label = `${name} ${entry}${t >= 0 ? ` t=${t}` : ''}`;
    const params = kernel.params({
      B: paramB, H, t: Math.max(t, 0),
      zeroPrev: f.zeroPrev ? 1 : 0, hasDy: f.hasDy ? 1 : 0, hasRec: f.hasRec ? 1 : 0, dyOff: f.dyOff ?? 0,
      forgetBias: spec.forgetBias, wOff: I * GH,
    }, label);
    // In place, the backward reads the gates through dz; z gets a stand-in (a buffer may not be bound twice for writing).
    const bound = {
      ...cellBufs,
      ...(inPlace && entry.endsWith('_bwd') ? { z: dummy } : {}),
      ...(constants.COPY_NEXT_A ? { next_a: nextA![t % 2] } : {}),
    };
    return { kernel, bindGroup: bindUsed(kernel, { params, ...bound }, label), workgroups, label, flops };
  };
  /** An elementwise cell kernel: one invocation per (n, j). */
  const cellStep = (entry: string, t: number, f: StepFlags, constants: Record<string, boolean> = {}): Dispatch =>
    kernelStep(entry, t, f, constants, workgroups1d(ctx, `${name} ${entry}`, BH, wg), 10 * BH * G);
  /** cellInMatmul: z_t += h_{t-1}·W_h and the cell of step t, in one dispatch. */
  const matmulCellForward = (t: number): Dispatch => {
    const label = `${name} h·W_h+lstm_fwd t=${t}`;
    const step = matmul(ctx, {
      M: B, N: GH, K: H, label,
      epilogue: {
        entry: 'lstm_fwd_step',
        bind: (kernel) => ({
          lstm: kernel.params({ B, H, t, hasDy: 0, dyOff: 0, forgetBias: spec.forgetBias }, label, 'lstm'),
          lstm_z: z, lstm_c: c!, lstm_h: h, lstm_next_a: nextA![t % 2],
        }),
      },
    }, { a: nextA![(t - 1) % 2], b: whi!, c: z });
    return { ...step, flops: (step.flops ?? 0) + 10 * BH * G };
  };
  /** cellInMatmul: dh_t = dz_{t+1}·W_hᵀ and the cell backward of step t, in one dispatch. */
  const matmulCellStep = (t: number, f: StepFlags): Dispatch => {
    const label = `${name} dz·W_hᵀ+lstm_bwd t=${t}`;
    const step = matmul(ctx, {
      M: B, N: H, K: GH, transB: true, offB: I * GH, label,
      epilogue: {
        entry: 'lstm_bwd_step',
        constants: { LSTM_GATES_IN_DZ: inPlace },
        bind: (kernel) => ({
          lstm: kernel.params({ B, H, t, hasDy: f.hasDy ? 1 : 0, dyOff: f.dyOff ?? 0, forgetBias: spec.forgetBias }, label, 'lstm'),
          lstm_z: inPlace ? dummy : z, lstm_dz: dz, lstm_c: c!, lstm_dy: dy, lstm_dc: dc!, lstm_next_a: nextA![t % 2],
        }),
      },
    }, { a: nextA![(t + 1) % 2], b: w, c: dh });
    return { ...step, flops: (step.flops ?? 0) + 10 * BH * G };
  };
  /** A fused step: recurrent matmul (K = H forward, K = G·H backward) and the cell. */
  const fusedStep = (entry: string, t: number, f: StepFlags, matmulFlops: number, rows: number): Dispatch =>
    kernelStep(entry, t, f, {}, [ceilDiv(H, wg), ceilDiv(B, rows), 1], matmulFlops + 10 * BH * G);

  // ---- forward
  const forward: Dispatch[] = [];
  forward.push(matmul(ctx, { M: TB, N: GH, K: I, offA: xOffset, label: `${name} x·W_x+b` }, { a: x, b: w, bias: b, c: z }));
  if (spec.cellInMatmul && T > 1) forward.push(kernelStep('interleave_wh', -1, {}, {}, workgroups1d(ctx, `${name} interleave`, GH * H, wg), 0));
  for (let t = 0; t < T; t++) {
    const zeroPrev = t === 0 && spec.initialState === 'zeros';
    const rec = (label: string) => `${name} ${label} t=${t}`;
    if (spec.cellInMatmul) {
      // Step 0 as matmul (for a given state) and cell, the cell keeping h_0 for step 1's matmul.
      if (t > 0) forward.push(matmulCellForward(t));
      else {
        if (!zeroPrev) forward.push(matmul(ctx, { M: B, N: GH, K: H, accumulate: true, offB: I * GH, label: rec('h·W_h') }, { a: h, b: w, c: z }));
        forward.push(cellStep('lstm_fwd', t, { zeroPrev }, { COPY_NEXT_A: true }));
      }
    } else if (cell === 'gru') {
      if (!zeroPrev) {
        forward.push(matmul(ctx, { M: B, N: 2 * H, K: H, accumulate: true, offA: t * BH, offB: I * GH, ldb: GH, offC: t * B * GH, ldc: GH, label: rec('h·W_h[r|u]') }, { a: h, b: w, c: z }));
      }
      forward.push(cellStep('gru_gates', t, { zeroPrev }));
      if (!zeroPrev) {
        forward.push(matmul(ctx, { M: B, N: H, K: H, accumulate: true, offA: t * BH, offB: I * GH + 2 * H, ldb: GH, offC: t * B * GH + 2 * H, ldc: GH, label: rec('(r⊙h)·W_hc') }, { a: rh!, b: w, c: z }));
        forward.push(cellStep('gru_cell', t, {}));
      }
    } else if (spec.fused && !zeroPrev) {
      forward.push(fusedStep('lstm_step', t, {}, 2 * B * H * GH, FUSED_ROWS));
    } else {
      if (!zeroPrev) {
        forward.push(matmul(ctx, { M: B, N: GH, K: H, accumulate: true, offA: t * BH, offB: I * GH, offC: t * B * GH, label: rec('h·W_h') }, { a: h, b: w, c: z }));
      }
      forward.push(cellStep(cell === 'lstm' ? 'lstm_fwd' : 'rnn_fwd', t, { zeroPrev }));
    }
  }

  // ---- backward through time
  const backward: Dispatch[] = [];
  if (spec.fused) backward.push(kernelStep('transpose_wh', -1, {}, {}, workgroups1d(ctx, `${name} transpose`, GH * H, wg), 0, GH));
  for (let t = T - 1; t >= 0; t--) {
    const zeroPrev = t === 0 && spec.initialState === 'zeros';
    const f = {
      zeroPrev,
      hasRec: t < T - 1,
      hasDy: spec.gradFrom === 'all' || t === T - 1,
      dyOff: spec.gradFrom === 'all' ? t * BH : 0,
    };
    const rec = (label: string) => `${name} ${label} t=${t}`;
    if (cell === 'gru') {
      backward.push(cellStep('gru_bwd_a', t, f));
      if (!zeroPrev) {
        backward.push(matmul(ctx, { M: B, N: H, K: H, transB: true, offA: t * B * GH + 2 * H, lda: GH, offB: I * GH + 2 * H, ldb: GH, label: rec('dz_c·W_hcᵀ') }, { a: dz, b: w, c: drh! }));
        backward.push(cellStep('gru_bwd_b', t, f));
        backward.push(matmul(ctx, { M: B, N: H, K: 2 * H, transB: true, accumulate: true, offA: t * B * GH, lda: GH, offB: I * GH, ldb: GH, label: rec('dz[r|u]·W_h[r|u]ᵀ') }, { a: dz, b: w, c: dh }));
      }
    } else if (backwardCellInMatmul) {
      // The last step's cell alone; each earlier step t with the matmul that brings dh_t from step t+1.
      backward.push(t === T - 1 ? cellStep('lstm_bwd', t, f, { COPY_NEXT_A: true }) : matmulCellStep(t, f));
      if (t === 0 && !zeroPrev) {
        backward.push(matmul(ctx, { M: B, N: H, K: GH, transB: true, offB: I * GH, label: rec('dz·W_hᵀ') }, { a: dz, b: w, c: dh }));
      }
    } else if (spec.fused) {
      // dh_t = dz[t+1]·W_hᵀ inside the step; dL/dh0 (given initial state) by one matmul after the loop
      backward.push(fusedStep('lstm_step_bwd', t, f, f.hasRec ? 2 * B * H * GH : 0, FUSED_ROWS_BWD));
      if (t === 0 && !zeroPrev) {
        backward.push(matmul(ctx, { M: B, N: H, K: GH, transB: true, offB: I * GH, label: rec('dz·W_hᵀ') }, { a: dz, b: w, c: dh }));
      }
    } else {
      backward.push(cellStep(cell === 'lstm' ? 'lstm_bwd' : 'rnn_bwd', t, f));
      if (!zeroPrev) {
        // One layer (no split) unless splitDh: then dhSplits, or matmulSplitK's own choice.
        const splits = splitDh ? dhSplits : 1;
        backward.push(...matmulSplitK(ctx, { ...dhProduct, offA: t * B * GH, offB: I * GH, splits, label: rec('dz·W_hᵀ') }, { a: dz, b: w, c: dh }));
      }
    }
  }
  const acc = spec.accumulateGrads;
  const throughTime = backward.length;
  backward.push(...matmulSplitK(ctx, { M: I, N: GH, K: TB, transA: true, offA: xOffset, accumulate: acc, label: `${name} dW_x=xᵀ·dZ` }, { a: x, b: dz, c: dw }));
  if (cell === 'gru') {
    backward.push(...matmulSplitK(ctx, { M: H, N: 2 * H, K: TB, transA: true, ldb: GH, offC: I * GH, ldc: GH, accumulate: acc, label: `${name} dW_h[r|u]=hᵀ·dZ` }, { a: h, b: dz, c: dw }));
    backward.push(...matmulSplitK(ctx, { M: H, N: H, K: TB, transA: true, offB: 2 * H, ldb: GH, offC: I * GH + 2 * H, ldc: GH, accumulate: acc, label: `${name} dW_hc=(r⊙h)ᵀ·dZ` }, { a: rh!, b: dz, c: dw }));
  } else {
    backward.push(...matmulSplitK(ctx, { M: H, N: GH, K: TB, transA: true, offC: I * GH, accumulate: acc, label: `${name} dW_h=hᵀ·dZ` }, { a: h, b: dz, c: dw }));
  }
  backward.push(...columnSum(ctx, { rows: TB, cols: GH, accumulate: acc, label: `${name} db=Σ dZ` }, { x: dz, out: db }));
  if (dx) backward.push(...matmulSplitK(ctx, { M: TB, N: I, K: GH, transB: true, offC: dxOffset, label: `${name} dX=dZ·W_xᵀ` }, { a: dz, b: w, c: dx }));

  return {
    spec, x, xOffset, w, b, dw, db, dy, dx, h, c, outputOffset: BH, finalOffset: T * BH,
    z, rh, dz, dh, dc, forward, backward, gradientDispatches: backward.length - throughTime, owned,
  };
}

export interface RecurrentStackSpec {
  cell: RecurrentCell;
  T: number;
  B: number;
  /** Input size of the first layer. */
  I: number;
  /** Hidden size of each layer, bottom first (its length is the number of layers). */
  hidden: number[];
  forgetBias?: number;
  /** Per layer, as in RecurrentLayerSpec: 'given' means the caller writes every layer's h[0] (and c[0]). */
  initialState?: 'zeros' | 'given';
  /** Of the top layer's outputs; the lower layers always get gradients from all steps. */
  gradFrom?: 'all' | 'last';
  /** dx of the bottom layer (default true). */
  inputGrad?: boolean;
  accumulateGrads?: boolean;
  /** Dropout between layers (not after the top one): a mask [T, B, H_l] of 0 or 1/keep per gap, multiplied
   *  into layer l's outputs before layer l+1 reads them, and into the gradient on the way back. The masks
   *  are given in `masks` or allocated here for the caller to fill (e.g. by a GPU RNG before each step). */
  dropout?: boolean;
  /** As in RecurrentLayerSpec (LSTM). */
  fused?: boolean;
  cellInMatmul?: boolean;
  splitRecurrentProduct?: boolean | number;
  label?: string;
}

export interface RecurrentStackBuffers {
  x: GPUBuffer;
  xOffset?: number;
  /** Gradient of the top layer's outputs ([T, B, H_top] or [B, H_top], as gradFrom). */
  dy?: GPUBuffer;
  dx?: GPUBuffer;
  /** Per layer weights and gradients, and optionally its sequence state (any may be left out to be allocated). */
  params?: Pick<RecurrentLayerBuffers, 'w' | 'b' | 'dw' | 'db' | 'h' | 'c' | 'z' | 'rh' | 'dz'>[];
  /** Dropout masks, one per gap between layers (hidden.length − 1), each [T, B, hidden[l]]. */
  masks?: GPUBuffer[];
}

export interface RecurrentStack {
  layers: RecurrentLayer[];
  /** Dropout masks (when spec.dropout), bottom gap first. */
  masks: GPUBuffer[];
  /** The top layer's outputs [T, B, H_top]: in `buffer` from element `offset`. Final states: each layer's h/c at finalOffset. */
  output: { buffer: GPUBuffer; offset: number };
  dy: GPUBuffer;
  dx: GPUBuffer | undefined;
  forward: Dispatch[];
  backward: Dispatch[];
  /** How many of `backward`'s last dispatches are the bottom layer's dW, db and dX (see RecurrentLayer):
   *  a graph can schedule them as a node of their own, after which the cell states are free. */
  bottomGradientDispatches: number;
  owned: GPUBuffer[];
}

/** Prepares stacked recurrent layers (TF MultiRNNCell of the same cell), with optional dropout between them. */
export function prepareRecurrentStack(ctx: GpuContext, spec: RecurrentStackSpec, bufs: RecurrentStackBuffers): RecurrentStack {
  const { cell, T, B, I, hidden } = spec;
  const name = spec.label ?? `${cell}×${hidden.length}`;
  if (!hidden.length) throw new GpuError(`recurrent stack ${name}: no layers (hidden is empty)`);
  checkPositive(`recurrent stack ${name}`, { T, B, I, ...Object.fromEntries(hidden.map((h, l) => [`hidden[${l}]`, h])) });
  const L = hidden.length;
  const owned: GPUBuffer[] = [];
  const masks: GPUBuffer[] = [];
  if (spec.dropout) {
    if (bufs.masks && bufs.masks.length !== L - 1) throw new GpuError(`recurrent stack ${name}: ${L - 1} dropout masks needed, ${bufs.masks.length} given`);
    for (let l = 0; l < L - 1; l++) {
      const n = T * B * hidden[l];
      let m = bufs.masks?.[l];
      if (m) checkSize(name, `mask ${l}`, m, n);
      else { m = ctx.storage(n * 4, `${name} mask ${l}`); owned.push(m); }
      masks.push(m);
    }
  }
  const layers: RecurrentLayer[] = [];
  const fwdMask: Dispatch[] = [];
  const bwdMask: Dispatch[] = [];
  let x = bufs.x;
  let xOffset = bufs.xOffset ?? 0;
  // Lower layers' dy are allocated first, so that the layer above writes its dx straight into them
  // (or, with dropout, into a buffer that the mask then carries into them).
  const lowerDy: GPUBuffer[] = [];
  const dxUpper: GPUBuffer[] = [];
  for (let l = 0; l < L - 1; l++) {
    const n = T * B * hidden[l];
    const d = ctx.storage(n * 4, `${name} layer ${l} dy`);
    owned.push(d);
    lowerDy.push(d);
    if (spec.dropout) { const e = ctx.storage(n * 4, `${name} layer ${l + 1} dx`); owned.push(e); dxUpper.push(e); } else dxUpper.push(d);
  }
  for (let l = 0; l < L; l++) {
    const top = l === L - 1;
    const p = bufs.params?.[l] ?? {};
    const layer = prepareRecurrentLayer(ctx, {
      cell, T, B, I: l === 0 ? I : hidden[l - 1], H: hidden[l],
      forgetBias: spec.forgetBias, initialState: spec.initialState,
      gradFrom: top ? spec.gradFrom : 'all',
      inputGrad: l === 0 ? (spec.inputGrad ?? true) : true,
      accumulateGrads: spec.accumulateGrads,
      fused: spec.fused,
      cellInMatmul: spec.cellInMatmul,
      splitRecurrentProduct: spec.splitRecurrentProduct,
      label: `${name} layer ${l}`,
    }, {
      x, xOffset, ...p,
      dy: top ? bufs.dy : lowerDy[l],
      dx: l === 0 ? bufs.dx : dxUpper[l - 1],
    });
    layers.push(layer);
    owned.push(...layer.owned);
    if (!top) {
      const n = T * B * hidden[l];
      if (spec.dropout) {
        const dropped = ctx.storage(n * 4, `${name} layer ${l} dropped outputs`);
        owned.push(dropped);
        fwdMask[l] = maskMultiply(ctx, { n, offX: layer.outputOffset, label: `${name} dropout ${l}` }, { src: layer.h, mask: masks[l], out: dropped });
        bwdMask[l] = maskMultiply(ctx, { n, label: `${name} dropout ${l} backward` }, { src: dxUpper[l], mask: masks[l], out: lowerDy[l] });
        x = dropped;
        xOffset = 0;
      } else {
        x = layer.h;
        xOffset = layer.outputOffset;
      }
    }
  }
  const forward: Dispatch[] = [];
  const backward: Dispatch[] = [];
  for (let l = 0; l < L; l++) {
    forward.push(...layers[l].forward);
    if (fwdMask[l]) forward.push(fwdMask[l]);
  }
  for (let l = L - 1; l >= 0; l--) {
    backward.push(...layers[l].backward);
    if (l > 0 && bwdMask[l - 1]) backward.push(bwdMask[l - 1]);
  }
  const topLayer = layers[L - 1];
  return {
    layers, masks, output: { buffer: topLayer.h, offset: topLayer.outputOffset },
    dy: topLayer.dy, dx: layers[0].dx, forward, backward, bottomGradientDispatches: layers[0].gradientDispatches, owned,
  };
}

/** Frees the buffers a layer or stack allocated (not those it was given). */
export function releaseRecurrent(ctx: GpuContext, r: { owned: GPUBuffer[] }): void {
  for (const b of r.owned) ctx.release(b);
  r.owned.length = 0;
}

/**
 * TF's initial values for a layer's parameters, as float32 arrays in the layout above: kernel Glorot-uniform
 * over [I+H, G·H] (TF1's default for get_variable; GRU: separately over its gate [I+H, 2H] and candidate
 * [I+H, H] kernels), bias zeros, except GRU's r|u bias 1.0 (TF GRUCell's constant_initializer(1.0)).
 * `rand` returns uniform numbers in [0, 1).
 */
export function recurrentInit(cell: RecurrentCell, I: number, H: number, rand: () => number): { w: Float32Array; b: Float32Array } {
  const G = GATE_COUNT[cell], GH = G * H;
  const w = new Float32Array((I + H) * GH);
  const b = new Float32Array(GH);
  const fill = (c0: number, c1: number) => {
    const lim = Math.sqrt(6 / (I + H + (c1 - c0)));
    for (let r = 0; r < I + H; r++) for (let col = c0; col < c1; col++) w[r * GH + col] = (2 * rand() - 1) * lim;
  };
  if (cell === 'gru') {
    fill(0, 2 * H);
    fill(2 * H, 3 * H);
    b.fill(1, 0, 2 * H);
  } else {
    fill(0, GH);
  }
  return { w, b };
}
