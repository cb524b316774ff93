// The CLI's check that a run's buffers can be bound on this GPU, made after the adapter's limits
// are known and before any buffer is made: one line naming the flag that set the size (--batch,
// --hidden, or a --model file's layer) and a value that fits.
import { oversizedTensor, type OversizedTensor, type SizeLimits } from '../nn/binding-sizes.js';
import { builtinModel } from '../nn/models/builtin.js';
import type { Model } from '../nn/model.js';
import type { TrainArgs } from './args.js';

/** A run too large for the device. The message is one line naming the flag and a size that fits. */
export class RunSizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunSizeError';
  }
}

const mb = (bytes: number) => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(1)} MB`);

function what(o: OversizedTensor): string {
  return `${o.tensor} [${o.shape.join(', ')}] would need ${mb(o.bytes)} in one buffer, over this GPU's ${o.limitName} (${mb(o.limit)})`;
}

/** The largest hidden width of a built-in net (at most `hidden`) whose run fits, or undefined if even 1 does not. */
function largestHidden(args: TrainArgs, limits: SizeLimits): number | undefined {
  const fits = (h: number) => oversizedTensor(builtinModel(args.net!, { hidden: h, layers: args.layers, cell: args.cell, keepProb: args.keepProb }), args.batch, limits) === undefined;
  if (!fits(1)) return undefined;
  let lo = 1; // fits
  let hi = args.hidden!; // does not
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Throws RunSizeError when `model` at the run's batch has a tensor the device cannot bind. */
export function checkRunSize(args: TrainArgs, model: Model, label: string, limits: SizeLimits): void {
  const o = oversizedTensor(model, args.batch, limits);
  if (!o) return;
  if (o.cause === 'batch') {
    throw new RunSizeError(`--batch ${args.batch} is too large for this GPU: ${what(o)}; give --batch ${o.maxBatch} or less`);
  }
  if (args.net && args.hidden !== undefined) {
    const h = largestHidden(args, limits);
    const fix = h !== undefined ? `give --hidden ${h} or less` : `give a smaller --batch or --hidden`;
    throw new RunSizeError(`--hidden ${args.hidden} is too large for this GPU: ${what(o)}; ${fix}`);
  }
  if (args.net) throw new RunSizeError(`--net ${args.net} is too large for this GPU: ${what(o)}`);
  throw new RunSizeError(`layer ${o.layer} of ${label} is too large for this GPU: ${what(o)}; make that layer smaller in the model file`);
}
