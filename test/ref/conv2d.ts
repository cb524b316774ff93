// Float64 CPU twin of the NHWC convolution (direct loops, no im2col) and its backward.
import { activate, type Act } from '../support/cpu.js';

export type PaddingRef = 'SAME' | 'VALID';

/** Output size and leading padding of one dimension, as TensorFlow computes them. */
export function tfWindow(size: number, k: number, stride: number, padding: PaddingRef): { out: number; before: number } {
  if (padding === 'VALID') return { out: Math.ceil((size - k + 1) / stride), before: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  return { out, before: Math.floor(total / 2) };
}

export interface ConvShape {
  batch: number; inH: number; inW: number; inC: number;
  kH: number; kW: number; outC: number;
  strideH: number; strideW: number; padding: PaddingRef;
}

export function convOut(s: ConvShape) {
  const h = tfWindow(s.inH, s.kH, s.strideH, s.padding);
  const w = tfWindow(s.inW, s.kW, s.strideW, s.padding);
  return { outH: h.out, outW: w.out, padTop: h.before, padLeft: w.before };
}

/** y[n,oh,ow,co] = act(Σ x[n, oh·sH+ki−pt, ow·sW+kj−pl, ci]·f[ki,kj,ci,co] + b[co]). */
export function conv2dRef(s: ConvShape, x: ArrayLike<number>, f: ArrayLike<number>, bias?: ArrayLike<number>, act: Act = 'none'): Float64Array {
  const { outH, outW, padTop, padLeft } = convOut(s);
  const { batch, inH, inW, inC, kH, kW, outC } = s;
  const y = new Float64Array(batch * outH * outW * outC);
  const acc = new Float64Array(outC);
  for (let n = 0; n < batch; n++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        for (let co = 0; co < outC; co++) acc[co] = bias ? bias[co] : 0;
        for (let ki = 0; ki < kH; ki++) {
          const ih = oh * s.strideH + ki - padTop;
          if (ih < 0 || ih >= inH) continue;
          for (let kj = 0; kj < kW; kj++) {
            const iw = ow * s.strideW + kj - padLeft;
            if (iw < 0 || iw >= inW) continue;
            const xb = ((n * inH + ih) * inW + iw) * inC;
            for (let ci = 0; ci < inC; ci++) {
              const xv = x[xb + ci];
              const fb = ((ki * kW + kj) * inC + ci) * outC;
              for (let co = 0; co < outC; co++) acc[co] += xv * f[fb + co];
            }
          }
        }
        const yb = ((n * outH + oh) * outW + ow) * outC;
        for (let co = 0; co < outC; co++) y[yb + co] = activate(acc[co], act);
      }
    }
  }
  return y;
}

/** Gradients of Σ dy·y (y before any activation) w.r.t. x, the filter and the bias. */
export function conv2dBackwardRef(s: ConvShape, x: ArrayLike<number>, f: ArrayLike<number>, dy: ArrayLike<number>) {
  const { outH, outW, padTop, padLeft } = convOut(s);
  const { batch, inH, inW, inC, kH, kW, outC } = s;
  const dx = new Float64Array(batch * inH * inW * inC);
  const dF = new Float64Array(kH * kW * inC * outC);
  const dB = new Float64Array(outC);
  for (let n = 0; n < batch; n++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        const yb = ((n * outH + oh) * outW + ow) * outC;
        for (let co = 0; co < outC; co++) dB[co] += dy[yb + co];
        for (let ki = 0; ki < kH; ki++) {
          const ih = oh * s.strideH + ki - padTop;
          if (ih < 0 || ih >= inH) continue;
          for (let kj = 0; kj < kW; kj++) {
            const iw = ow * s.strideW + kj - padLeft;
            if (iw < 0 || iw >= inW) continue;
            const xb = ((n * inH + ih) * inW + iw) * inC;
            for (let ci = 0; ci < inC; ci++) {
              const xv = x[xb + ci];
              const fb = ((ki * kW + kj) * inC + ci) * outC;
              let sx = 0;
              for (let co = 0; co < outC; co++) {
                const g = dy[yb + co];
                sx += g * f[fb + co];
                dF[fb + co] += g * xv;
              }
              dx[xb + ci] += sx;
            }
          }
        }
      }
    }
  }
  return { dx, dFilter: dF, dBias: dB };
}
