// Float64 CPU twins of max and average pooling (NHWC, TensorFlow's SAME/VALID) and their backward.
import { tfWindow, type PaddingRef } from './conv2d.js';

export interface PoolShape {
  batch: number; inH: number; inW: number; channels: number;
  kH: number; kW: number; strideH: number; strideW: number; padding: PaddingRef;
}

export function poolOut(s: PoolShape) {
  const h = tfWindow(s.inH, s.kH, s.strideH, s.padding);
  const w = tfWindow(s.inW, s.kW, s.strideW, s.padding);
  return { outH: h.out, outW: w.out, padTop: h.before, padLeft: w.before };
}

/** Calls fn(outIndex, inIndices) for every output element with the in-bounds input indices of its window, in row-major window order. */
function eachWindow(s: PoolShape, fn: (o: number, ins: number[]) => void): void {
  const { outH, outW, padTop, padLeft } = poolOut(s);
  const { batch, inH, inW, channels: C } = s;
  for (let n = 0; n < batch; n++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        for (let c = 0; c < C; c++) {
          const ins: number[] = [];
          for (let ki = 0; ki < s.kH; ki++) {
            const ih = oh * s.strideH + ki - padTop;
            if (ih < 0 || ih >= inH) continue;
            for (let kj = 0; kj < s.kW; kj++) {
              const iw = ow * s.strideW + kj - padLeft;
              if (iw < 0 || iw >= inW) continue;
              ins.push(((n * inH + ih) * inW + iw) * C + c);
            }
          }
          fn(((n * outH + oh) * outW + ow) * C + c, ins);
        }
      }
    }
  }
}

/** Max over each window (padding never wins); argmax = flat index into x of the first maximum in row-major window order. */
export function maxPoolRef(s: PoolShape, x: ArrayLike<number>): { y: Float64Array; argmax: Uint32Array } {
  const { outH, outW } = poolOut(s);
  const size = s.batch * outH * outW * s.channels;
  const y = new Float64Array(size);
  const argmax = new Uint32Array(size);
  eachWindow(s, (o, ins) => {
    let best = ins[0];
    for (const i of ins) if (x[i] > x[best]) best = i;
    y[o] = x[best];
    argmax[o] = best;
  });
  return { y, argmax };
}

/** dx: each dy goes to its window's argmax (first maximum of x). */
export function maxPoolBackwardRef(s: PoolShape, x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(s.batch * s.inH * s.inW * s.channels);
  const { argmax } = maxPoolRef(s, x);
  for (let o = 0; o < argmax.length; o++) dx[argmax[o]] += dy[o];
  return dx;
}

/** Mean over the in-bounds elements of each window (TensorFlow does not count the padding). */
export function avgPoolRef(s: PoolShape, x: ArrayLike<number>): Float64Array {
  const { outH, outW } = poolOut(s);
  const y = new Float64Array(s.batch * outH * outW * s.channels);
  eachWindow(s, (o, ins) => {
    let sum = 0;
    for (const i of ins) sum += x[i];
    y[o] = sum / ins.length;
  });
  return y;
}

export function avgPoolBackwardRef(s: PoolShape, dy: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(s.batch * s.inH * s.inW * s.channels);
  eachWindow(s, (o, ins) => {
    for (const i of ins) dx[i] += dy[o] / ins.length;
  });
  return dx;
}
