import type { GpuContext } from '../gpu/context.js';
import type { Dispatch } from '../gpu/dispatch.js';
import { avgPool2d, avgPool2dBackward, type Pool2dSpec } from './pool.js';

/** Global average pooling of x [batch, H, W, channels] (NHWC) → y [batch, channels]. */
export interface GlobalAvgPoolSpec {
  batch: number;
  H: number;
  W: number;
  channels: number;
  label?: string;
}

// An average pool whose window is the whole H×W image, VALID padding: one output pixel per
// example, y[n, 0, 0, c] = Σ x[n, ·, ·, c] / (H·W), which is y [batch, channels] in memory. The
// pool kernels' lanes run along channels (vec4 when C % 4 == 0) and the backward pass is a gather
// over input pixels, so both stay as parallel as the general pools.
function asPool(spec: GlobalAvgPoolSpec): Pool2dSpec {
  return {
    batch: spec.batch, inH: spec.H, inW: spec.W, channels: spec.channels,
    kH: spec.H, kW: spec.W, stride: [spec.H, spec.W], padding: 'VALID', label: spec.label ?? 'globalAvgPool',
  };
}

/** y[n, c] = mean over h, w of x[n, h, w, c]. */
export function globalAvgPool(ctx: GpuContext, spec: GlobalAvgPoolSpec, bufs: { x: GPUBuffer; y: GPUBuffer }): Dispatch {
  return avgPool2d(ctx, asPool(spec), bufs);
}

/** dx[n, h, w, c] (+)= dy[n, c] / (H·W); with `accumulate`, dx += instead of =. */
export function globalAvgPoolBackward(
  ctx: GpuContext, spec: GlobalAvgPoolSpec & { accumulate?: boolean }, bufs: { dy: GPUBuffer; dx: GPUBuffer },
): Dispatch {
  return avgPool2dBackward(ctx, { ...asPool(spec), accumulate: spec.accumulate }, bufs);
}
