// The accuracy of a classifier counted by its loss: an accuracy op reading the same logits and
// labels as a softmax cross-entropy is moved into it, whose kernel then also writes the predictions
// and adds up the correct ones (shaders/softmax_xent.wgsl, COUNT_CORRECT). The step loses the
// accuracy's dispatch, which on a CPU adapter costs more than the rows it reads.
import type { Graph } from './graph.js';
import type { Tensor } from './tensor.js';

/**
 * Moves each forward 'accuracy' node into the forward 'xent' node before it that reads the same
 * logits and labels: the xent node then also writes the accuracy's outputs (predictions, correct),
 * as its outputs 4 and 5. Nothing between the two may write the logits or the labels.
 */
export function fuseAccuracy(graph: Graph): void {
  for (const accuracy of graph.nodes.filter((n) => n.op === 'accuracy' && n.phase === 'forward')) {
    const [logits, labels] = accuracy.inputs;
    const at = graph.nodes.indexOf(accuracy);
    const xent = graph.nodes.find((n, i) => i < at && n.op === 'xent' && n.phase === 'forward' && n.outputs.length === 4
      && n.inputs[0] === logits && n.inputs[1] === labels);
    if (!xent) continue;
    const from = graph.nodes.indexOf(xent);
    const writes = (t: Tensor) => graph.nodes.some((n, i) => i > from && i < at && n.outputs.some((o) => o.root === t.root));
    if (writes(logits) || writes(labels)) continue;
    for (const t of accuracy.outputs) t.producer = xent;
    xent.outputs = [...xent.outputs, ...accuracy.outputs];
    graph.nodes.splice(at, 1);
  }
}
