import type { Node } from './graph.js';
import type { Tensor } from './tensor.js';

/** A planned buffer shared by tensors whose lifetimes do not overlap. */
export interface Slot {
  index: number;
  bytes: number;
  tensors: Tensor[];
}

export interface Plan {
  slots: Slot[];
  slotOf: Map<Tensor, Slot>;
  /** Sum of the slots' sizes: the planned GPU memory for activations and gradients. */
  plannedBytes: number;
  /** What the same tensors would take with a buffer each. */
  naiveBytes: number;
}

/** Tensors the planner places: activations and gradients (not inputs, params, state, views or op-owned storage). */
export function isPlanned(t: Tensor): boolean {
  return (t.role === 'value' || t.role === 'grad') && !t.viewOf && !t.external && !t.opOwned;
}

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/**
 * Liveness over the scheduled node order, then a greedy assignment: a tensor takes a free slot
 * when it is first written (best fit, growing the largest free slot if none fits) and gives it
 * back after its last reader (tensors in `keep` are read after the step: they never give it back). A node's outputs never share a slot with its own inputs, because
 * the inputs are released only after the outputs are placed.
 */
export function planBuffers(schedule: readonly Node[], keep: readonly Tensor[] = []): Plan {
  const first = new Map<Tensor, number>();
  const last = new Map<Tensor, number>();
  schedule.forEach((n, i) => {
    for (const t of [...n.inputs, ...n.outputs]) {
      const r = t.root;
      if (!isPlanned(r)) continue;
      if (!first.has(r)) first.set(r, i);
      last.set(r, i);
    }
  });
  // Tensors the caller reads after the step (predictions, losses) live to the end.
  for (const t of keep) if (last.has(t.root)) last.set(t.root, schedule.length - 1);
  const slots: Slot[] = [];
  const free: Slot[] = [];
  const slotOf = new Map<Tensor, Slot>();
  const dying = new Map<number, Tensor[]>();
  for (const [t, i] of last) {
    const list = dying.get(i) ?? [];
    list.push(t);
    dying.set(i, list);
  }
  let naiveBytes = 0;
  schedule.forEach((n, i) => {
    for (const o of n.outputs) {
      const r = o.root;
      if (!isPlanned(r) || slotOf.has(r) || first.get(r) !== i) continue;
      const need = align16(r.bytes);
      naiveBytes += need;
      let best = -1;
      for (let k = 0; k < free.length; k++) {
        if (free[k].bytes >= need && (best < 0 || free[k].bytes < free[best].bytes)) best = k;
      }
      if (best < 0 && free.length) {
        best = 0;
        for (let k = 1; k < free.length; k++) if (free[k].bytes > free[best].bytes) best = k;
      }
      let slot: Slot;
      if (best >= 0) {
        slot = free.splice(best, 1)[0];
        slot.bytes = Math.max(slot.bytes, need);
      } else {
        slot = { index: slots.length, bytes: need, tensors: [] };
        slots.push(slot);
      }
      slot.tensors.push(r);
      slotOf.set(r, slot);
    }
    for (const t of dying.get(i) ?? []) {
      const s = slotOf.get(t);
      if (s) free.push(s);
    }
  });
  return { slots, slotOf, plannedBytes: slots.reduce((a, s) => a + s.bytes, 0), naiveBytes };
}
