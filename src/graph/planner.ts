import type { Node } from './graph.js';
import type { Tensor } from './tensor.js';

/** A planned buffer shared by tensors whose lifetimes do not overlap. */
export interface Slot {
  index: number;
  bytes: number;
  tensors: Tensor[];
}

/** How the planner laid out the step's temporary tensors in shared buffers (slots), with the byte counts. */
export interface Plan {
  slots: Slot[];
  slotOf: Map<Tensor, Slot>;
  /** Sum of the slots' sizes: the planned GPU memory for activations and gradients. */
  plannedBytes: number;
  /** What the same tensors would take with a buffer each (in-place values included). */
  naiveBytes: number;
  /**
   * The part of `naiveBytes` that is values written in place over another tensor's storage (e.g. the
   * recurrent gate gradients over the gates): a naive plan gives them a buffer, this one never does.
   */
  inPlaceBytes: number;
}

export interface PlanOptions {
  /** false: every tensor gets a slot of its own (the naive plan), e.g. to see which tensor each bound buffer is. */
  reuse?: boolean;
}

/** Tensors the planner places: activations and gradients (not inputs, params, state, views or external storage). */
export function isPlanned(t: Tensor): boolean {
  return (t.role === 'value' || t.role === 'grad') && !t.viewOf && !t.external;
}

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/**
 * Liveness over the scheduled node order gives each tensor an interval [first write, last read]
 * (tensors in `keep` are read after the step: to the end). Then greedy by size: the largest tensor
 * first, each into the first slot holding no tensor whose interval overlaps its own, else a new
 * slot. Intervals are inclusive, so a node's outputs never share a slot with its own inputs.
 */
export function planBuffers(schedule: readonly Node[], keep: readonly Tensor[] = [], opts: PlanOptions = {}): Plan {
  const reuse = opts.reuse ?? true;
  const first = new Map<Tensor, number>();
  const last = new Map<Tensor, number>();
  const inPlace = new Set<Tensor>();
  schedule.forEach((n, i) => {
    for (const t of [...n.inputs, ...n.outputs]) {
      if (t.inPlace) inPlace.add(t);
      const r = t.root;
      if (!isPlanned(r)) continue;
      if (!first.has(r)) first.set(r, i);
      last.set(r, i);
    }
  });
  for (const t of keep) if (last.has(t.root)) last.set(t.root, schedule.length - 1);
  const tensors = [...first.keys()].sort((a, b) => b.bytes - a.bytes || first.get(a)! - first.get(b)!);
  const slots: Slot[] = [];
  const slotOf = new Map<Tensor, Slot>();
  const overlaps = (a: Tensor, b: Tensor) => first.get(a)! <= last.get(b)! && first.get(b)! <= last.get(a)!;
  const inPlaceBytes = [...inPlace].reduce((sum, t) => sum + align16(t.bytes), 0);
  let naiveBytes = inPlaceBytes;
  for (const t of tensors) {
    const need = align16(t.bytes);
    naiveBytes += need;
    let slot = reuse ? slots.find((s) => !s.tensors.some((u) => overlaps(t, u))) : undefined;
    if (!slot) {
      slot = { index: slots.length, bytes: need, tensors: [] };
      slots.push(slot);
    }
    slot.bytes = Math.max(slot.bytes, need);
    slot.tensors.push(t);
    slotOf.set(t, slot);
  }
  return { slots, slotOf, plannedBytes: slots.reduce((a, s) => a + s.bytes, 0), naiveBytes, inPlaceBytes };
}
