// An activation's derivative applied by the backward that writes the activation's output gradient
// (a pooling's, or the dx product of the dense layer after), in place of the activation's output,
// instead of in a pass of the op that applied the activation: a conv's relu followed by max pooling,
// or a dense layer's relu followed by another dense layer, then costs no relu' dispatch, and its
// output gradient no buffer of its own (it is written over the layer's output, which the layer's
// backward read only for that derivative). The op rules say what each side can do
// (GradientRule.activationGrad, appliesActivationGrad); this pass decides where the graph allows it.
import type { GpuContext } from '../gpu/context.js';
import type { Graph } from './graph.js';
import { findOpRule } from './registry.js';
import type { Tensor } from './tensor.js';

/**
 * For each backward node that writes the gradient d(y) of an input y made by an op with a fused
 * activation, moves that activation's derivative into it, where:
 *  - it is the only writer of d(y), writes it whole, and is its op's only backward node;
 *  - y is its producer's output 0; neither y nor d(y) is kept for reading back;
 *  - both rules agree; and where the consumer writes d(y) in place (over y), after this node only
 *    the producer's backward reads y (for the derivative alone, by the producer's rule).
 * In place, d(y) becomes a view of y; beside it, d(y) keeps a buffer of its own. Either way the
 * producer's backward takes it as already activated.
 */
export function fuseActivationGrads(ctx: GpuContext, graph: Graph, keep: readonly Tensor[]): void {
  graph.nodes.forEach((backward, at) => {
    if (backward.phase !== 'backward' || !backward.forward || !backward.grads) return;
    if (graph.nodes.filter((n) => n.forward === backward.forward).length !== 1) return;
    backward.grads.forEach((dy, input) => {
      const y = backward.forward!.inputs[input];
      const producer = y.producer;
      if (!dy || dy.viewOf || backward.accumulate![input] || !producer || producer.outputs[0] !== y) return;
      if (keep.includes(y) || keep.includes(dy)) return;
      if (graph.nodes.filter((n) => n.outputs.includes(dy)).length !== 1) return;
      const activation = findOpRule(producer.op)?.gradient;
      const consumer = findOpRule(backward.forward!.op)?.gradient;
      if (activation?.kind !== 'kernel' || consumer?.kind !== 'kernel') return;
      const act = activation.activationGrad?.(producer);
      const where = act && consumer.appliesActivationGrad?.(ctx, backward.forward!, input, act, backward.updates ?? []);
      if (!act || !where) return;
      const producerBackward = graph.nodes.filter((n) => n.forward === producer);
      if (producerBackward.length !== 1) return;
      if (where === 'in place') {
        if (graph.nodes.some((n, i) => i > at && n !== producerBackward[0] && n.inputs.includes(y))) return;
        dy.viewOf = y;
        dy.inPlace = true;
      }
      backward.activationGrads = backward.grads!.map((_, i) => (i === input ? act : backward.activationGrads?.[i]));
      producerBackward[0].activated = producer.outputs.map((_, i) => i === 0 || !!producerBackward[0].activated?.[i]);
    });
  });
}
