// Whether a model's graphs can be bound on a device, worked out from the shapes alone (the graphs
// built on the CPU, no buffer made): a size too large for the adapter is refused before any GPU
// allocation, naming the tensor, whether the batch or the model's own size makes it too large, and
// the largest batch that would fit.
import { buildBackward } from '../graph/autodiff.js';
import type { Model } from './model.js';

/** The device limits a tensor's storage buffer must keep to. */
export interface SizeLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** A tensor of a graph too large for the device. */
export interface OversizedTensor {
  /** The tensor's name, e.g. "dense_1/kernel" or "d(mlp/h1)". */
  tensor: string;
  shape: number[];
  bytes: number;
  /** The smaller of the two limits, and its name. */
  limit: number;
  limitName: keyof SizeLimits;
  /** The graph it is in: the training step at the training batch, or evaluation. */
  graph: 'training' | 'evaluation';
  /**
   * 'batch': the tensor grows with the batch and fits at batch 1 (then `maxBatch` is the largest
   * batch that fits); 'model': it is too large even at batch 1 (a layer's width, a parameter).
   */
  cause: 'batch' | 'model';
  maxBatch?: number;
  /** The layer the tensor belongs to: the named op that makes or reads it, else its name up to the first "/" (gradients "d(...)" unwrapped). */
  layer: string;
}

/** Each tensor's bytes and shape in the model's graph at `batch` (training: with its backward pass), built on the CPU. */
function tensorSizes(model: Model, batch: number, training: boolean): Map<string, { bytes: number; shape: number[]; layer?: string }> {
  // A store that makes no buffers: only the graph's shapes are wanted.
  const store = { get: () => undefined as unknown as GPUBuffer };
  const net = model.build(store, batch, training, 0);
  if (training) buildBackward(net.graph, net.loss);
  // The layer of a tensor: the named op (a model's layer) that makes it, or whose parameter it is;
  // a gradient or a backward scratch belongs to the layer of its forward op.
  const layers = new Map<string, string>();
  for (const n of net.graph.nodes) {
    const name = (n.forward ?? n).attrs.name;
    if (typeof name !== 'string') continue;
    for (const t of n.outputs) if (!layers.has(t.name)) layers.set(t.name, name);
    for (const t of n.inputs) if (t.role === 'param' && !layers.has(t.name)) layers.set(t.name, name);
  }
  const sizes = new Map<string, { bytes: number; shape: number[]; layer?: string }>();
  for (const t of net.graph.tensors) {
    if (t.viewOf) continue; // a view binds (part of) its root's buffer
    sizes.set(t.name, { bytes: t.bytes, shape: [...t.shape], layer: layers.get(t.name) });
  }
  return sizes;
}

/** The layer a tensor name belongs to: "d(dense_1/kernel)" → "dense_1". */
export function layerOf(tensor: string): string {
  let name = tensor;
  while (/^d\(.*\)$/.test(name)) name = name.slice(2, -1);
  const slash = name.indexOf('/');
  return slash > 0 ? name.slice(0, slash) : name;
}

/**
 * The largest tensor of the training graph at `batch` that the device cannot bind, if any (the
 * evaluation graph shrinks its own batch to fit, so only a tensor too large at batch 1 there counts).
 */
export function oversizedTensor(model: Model, batch: number, limits: SizeLimits): OversizedTensor | undefined {
  const limitName: keyof SizeLimits = limits.maxStorageBufferBindingSize <= limits.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
  const limit = limits[limitName];
  const worst = (sizes: Map<string, { bytes: number; shape: number[]; layer?: string }>) => {
    let out: [string, { bytes: number; shape: number[]; layer?: string }] | undefined;
    for (const e of sizes) if (e[1].bytes > limit && (!out || e[1].bytes > out[1].bytes)) out = e;
    return out;
  };
  const atBatch = tensorSizes(model, batch, true);
  const big = worst(atBatch);
  if (big) {
    const atOne = batch === 1 ? atBatch : tensorSizes(model, 1, true); // built only when needed: a graph per Trainer.create is enough
    const [name, { bytes, shape }] = big;
    // Too large at batch 1 as well: the model's size, not the batch. Otherwise the batch's share
    // of it is per example: bytes(b) = fixed + b·perExample.
    const one = worst(atOne);
    if (one) return { tensor: one[0], shape: one[1].shape, bytes: one[1].bytes, limit, limitName, graph: 'training', cause: 'model', layer: one[1].layer ?? layerOf(one[0]) };
    let maxBatch = Infinity;
    for (const [n, s] of atBatch) {
      const fixed = atOne.get(n)?.bytes ?? 0;
      const perExample = (s.bytes - fixed) / (batch - 1);
      if (perExample > 0) maxBatch = Math.min(maxBatch, Math.floor((limit - fixed) / perExample) + 1);
    }
    return { tensor: name, shape, bytes, limit, limitName, graph: 'training', cause: 'batch', maxBatch: Math.max(1, maxBatch), layer: big[1].layer ?? layerOf(name) };
  }
  const evalOne = worst(tensorSizes(model, 1, false));
  if (evalOne) return { tensor: evalOne[0], shape: evalOne[1].shape, bytes: evalOne[1].bytes, limit, limitName, graph: 'evaluation', cause: 'model', layer: evalOne[1].layer ?? layerOf(evalOne[0]) };
  return undefined;
}
