import type { Node } from './graph.js';
import { GraphError } from './errors.js';

/** Element type of a tensor. */
export type DType = 'f32' | 'u32';

/**
 * What a tensor is for: `input` (fed each step: images, labels), `param` (trainable, persistent),
 * `state` (persistent non-trainable: optimizer moments, metric accumulators), `value` (an
 * activation or temporary, planned), `grad` (a gradient, planned).
 */
export type Role = 'input' | 'param' | 'state' | 'value' | 'grad';

/** Storage that lives outside the planner: a buffer someone else owns, at an element offset. */
export interface ExternalStorage {
  buffer: GPUBuffer;
  offset: number;
}

/** A tensor of a graph: its name, shape, element type and role (input, parameter, activation, gradient, state...). */
export class Tensor {
  readonly size: number;
  /** The node that writes it (undefined for inputs, params and state). */
  producer: Node | undefined;
  /** True when a gradient must flow to it (it depends on a parameter). */
  requiresGrad = false;
  /** Storage shared with another tensor (free reshapes, slices), starting `viewOffset` elements into it. */
  viewOf: Tensor | undefined;
  viewOffset = 0;
  /** A distinct value written over its view's storage (e.g. gradients over the activations they came from):
   *  no buffer of its own, but a buffer in a plan without reuse, so it counts in the naive sum. */
  inPlace = false;
  external: ExternalStorage | undefined;

  constructor(
    readonly id: number,
    readonly name: string,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly role: Role,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) throw new GraphError(`tensor ${name}: every dimension must be a positive integer, got [${shape.join(', ')}]`);
    }
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  get bytes(): number {
    return this.size * 4;
  }

  /** The tensor whose storage this one uses (itself unless it is a view). */
  get root(): Tensor {
    let t: Tensor = this;
    while (t.viewOf) t = t.viewOf;
    return t;
  }

  /** Element offset of this tensor in its root's storage (views and external storage). */
  get offset(): number {
    let off = 0;
    let t: Tensor = this;
    while (t.viewOf) {
      off += t.viewOffset;
      t = t.viewOf;
    }
    return off + (t.external?.offset ?? 0);
  }

  /** The name and shape, for messages. */
  toString(): string {
    return `${this.name} [${this.shape.join(', ')}]`;
  }
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
