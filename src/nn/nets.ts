// The five built-in nets by name (the CLI's --net), and how a batch of examples is laid out in a
// model's input tensor. The nets themselves are ordinary models: src/nn/models/builtin.ts.
import type { ParamStore } from './params.js';
import type { BuiltNet, InputLayout } from './model.js';
import { builtinModel, IMAGE, type NetKind, type NetKnobs } from './models/builtin.js';

export { IMAGE, type NetKind, type BuiltNet, type InputLayout };

export interface NetConfig extends NetKnobs {
  net: NetKind;
  seed: number;
}

/** Builds a built-in net's graph for a batch size; `training` turns dropout on. Parameters come from (and go to) `store`. */
export function buildNet(cfg: NetConfig, store: ParamStore, batch: number, training: boolean): BuiltNet {
  return builtinModel(cfg.net, cfg).build(store, batch, training, cfg.seed);
}

/**
 * Copies examples `index[0..count)` of `examples` (`shape` values each, example after example) into
 * a batch of `batch` in the model's layout, zero-padding past `count`: rows [B, ...shape], or
 * time-major [T, B, rest] (shape [T, ...rest]) for a recurrent model.
 */
export function fillBatch(layout: InputLayout, shape: readonly number[], examples: Float32Array, index: ArrayLike<number>, count: number, out: Float32Array, batch: number): void {
  const P = shape.reduce((a, b) => a * b, 1);
  if (layout === 'rows') {
    for (let b = 0; b < batch; b++) {
      if (b < count) out.set(examples.subarray(index[b] * P, index[b] * P + P), b * P);
      else out.fill(0, b * P, b * P + P);
    }
    return;
  }
  // time-major [T, B, I]: step t reads the example's t-th row of I values
  const T = shape[0], I = P / T;
  for (let b = 0; b < batch; b++) {
    const src = b < count ? index[b] * P : -1;
    for (let t = 0; t < T; t++) {
      const dst = (t * batch + b) * I;
      if (src < 0) out.fill(0, dst, dst + I);
      else out.set(examples.subarray(src + t * I, src + t * I + I), dst);
    }
  }
}
