// Helpers shared by the op files.
import { GraphError } from '../errors.js';
import type { LowerEnv } from '../registry.js';
import type { Tensor } from '../tensor.js';
import type { Padding } from '../../kernels/conv2d.js';

/** The buffer of a tensor that must start at offset 0 of its buffer (kernels without an offset parameter). */
export function whole(env: LowerEnv, t: Tensor, op: string): GPUBuffer {
  if (env.offset(t) !== 0) throw new GraphError(`${op}: ${t} lives at an offset; this op needs it at the start of a buffer`);
  return env.buf(t);
}

export function pair(v: number | [number, number] | undefined, d: number): [number, number] {
  if (v === undefined) return [d, d];
  return typeof v === 'number' ? [v, v] : v;
}

/** Output length of a window op along one axis (TF SAME/VALID). */
export function windowOut(n: number, k: number, s: number, padding: Padding): number {
  return padding === 'SAME' ? Math.ceil(n / s) : Math.ceil((n - k + 1) / s);
}

/** Throws unless no gradient is accumulated, or every wanted one is (kernels with a single accumulate flag). */
export function allOrNoneAccumulate(grads: readonly (Tensor | undefined)[], accumulate: readonly boolean[], op: string): boolean {
  if (accumulate.some((v) => v) && !accumulate.every((v, i) => v || !grads[i])) {
    throw new GraphError(`${op}: mixed gradient accumulation is not supported`);
  }
  return accumulate.some((v) => v);
}
