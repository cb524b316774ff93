// Optimizer updates fused into the backward product that computes their gradient: the gradient
// never goes through memory, and the update's own dispatch (a pass over the gradient, the
// parameter and its optimizer state) disappears. The op's rule decides where its lowering can
// (GradientRule.fusesUpdate); this pass decides where the graph allows it.
import type { GpuContext } from '../gpu/context.js';
import type { Graph } from './graph.js';
import { findOpRule } from './registry.js';
import type { Tensor } from './tensor.js';

/**
 * Moves each update node into the backward node that writes its gradient, where:
 *  - that node is the gradient's only writer and writes it whole (no other consumer's gradient to
 *    add to), and is its op's only backward node (not split);
 *  - nothing else reads the gradient (not kept for reading back either);
 *  - no node after it reads the parameter (the update would change what it reads);
 *  - the op's rule can apply this update in its lowering.
 * The backward node then writes the parameter and optimizer state instead of the gradient, which is
 * left out of the plan. Called before scheduling; clipped steps are never fused (a clip scale needs
 * every gradient of the step before any update).
 */
export function fuseUpdates(ctx: GpuContext, graph: Graph, keep: readonly Tensor[]): void {
  // Twice: an update a rule accepts only beside another (a bias's, beside its weight's) may come first.
  for (let pass = 0; pass < 2; pass++) fuseUpdatesOnce(ctx, graph, keep);
}

function fuseUpdatesOnce(ctx: GpuContext, graph: Graph, keep: readonly Tensor[]): void {
  for (const update of graph.nodes.filter((n) => n.phase === 'update' && n.inputs.length === 1)) {
    const [grad] = update.inputs;
    const param = update.outputs[0];
    if (keep.includes(grad)) continue;
    const writers = graph.nodes.filter((n) => n.outputs.includes(grad));
    if (writers.length !== 1 || graph.nodes.some((n) => n !== update && n.inputs.includes(grad))) continue;
    const [backward] = writers;
    if (backward.phase !== 'backward' || !backward.forward || !backward.grads) continue;
    if (graph.nodes.filter((n) => n.forward === backward.forward).length !== 1) continue;
    const input = backward.grads.indexOf(grad);
    if (input < 0 || backward.accumulate![input]) continue;
    const at = graph.nodes.indexOf(backward);
    if (graph.nodes.some((n, i) => i > at && n !== update && n.inputs.includes(param))) continue;
    const rule = findOpRule(backward.forward.op)?.gradient;
    if (rule?.kind !== 'kernel' || !rule.fusesUpdate?.(ctx, backward.forward, input, update, backward.updates ?? [])) continue;

    backward.grads = backward.grads.map((g, i) => (i === input ? undefined : g));
    backward.updates = backward.grads.map((_, i) => (i === input ? update : backward.updates?.[i]));
    backward.outputs = [...backward.outputs.filter((t) => t !== grad), ...update.outputs];
    graph.nodes.splice(graph.nodes.indexOf(update), 1);
  }
}
