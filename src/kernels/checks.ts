import { GpuError } from '../gpu/context.js';

/** Throws a GpuError naming `op` and the dimension unless every value is a positive integer. */
export function checkPositive(op: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 1) throw new GpuError(`${op}: ${k} must be a positive integer, got ${v}`);
  }
}
