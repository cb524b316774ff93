import { Graph, GraphError, type Node } from './graph.js';
import { GRADIENT_IS_OUTPUT, hasBackward, backwardNeeds, backwardSplit, backwardTemps } from './ops.js';
import type { Tensor } from './tensor.js';

/**
 * Reverse-mode autodiff: walks the forward nodes from the loss backwards and appends one
 * backward node per forward node that a gradient reaches. Returns the gradient of every
 * parameter. A tensor read by several ops gets their gradients summed (later writers add).
 */
export function buildBackward(g: Graph, loss: Tensor): Map<Tensor, Tensor> {
  const lossNode = loss.producer;
  if (!lossNode || lossNode.op !== 'xent') throw new GraphError(`autodiff: the loss must come from softmaxCrossEntropy (got ${loss})`);
  const grad = new Map<Tensor, Tensor>();
  const written = new Set<Tensor>();
  const forwardNodes = g.nodes.filter((n) => n.phase === 'forward');

  const gradOf = (t: Tensor): Tensor => {
    let d = grad.get(t);
    if (!d) {
      d = g.tensor(`d(${t.name})`, t.shape, 'f32', 'grad');
      grad.set(t, d);
    }
    return d;
  };

  for (let i = forwardNodes.length - 1; i >= 0; i--) {
    const n = forwardNodes[i];
    if (n.op in GRADIENT_IS_OUTPUT) {
      // The fused softmax cross-entropy made d(logits) in its forward: it IS the logits' gradient.
      if (n !== lossNode) continue;
      const logits = n.inputs[0];
      if (logits.requiresGrad) {
        if (grad.has(logits)) throw new GraphError(`autodiff: logits ${logits} feed more than one loss`);
        grad.set(logits, n.outputs[GRADIENT_IS_OUTPUT[n.op]]);
        written.add(logits);
      }
      continue;
    }
    const dOutputs = n.outputs.map((o) => (written.has(o) ? grad.get(o) : undefined));
    if (!dOutputs.some((d) => d)) continue;
    if (!hasBackward(n.op)) throw new GraphError(`autodiff: op "${n.op}" has no gradient`);
    if (n.op === 'reshape') {
      // The gradient of a view is a view of the gradient.
      const [x] = n.inputs;
      if (!x.requiresGrad) continue;
      if (written.has(x)) throw new GraphError(`autodiff: ${x} is reshaped and also read elsewhere; not supported`);
      const dx = g.tensor(`d(${x.name})`, x.shape, 'f32', 'grad');
      dx.viewOf = dOutputs[0]!;
      grad.set(x, dx);
      written.add(x);
      continue;
    }
    const grads = n.inputs.map((t) => (t.requiresGrad && t.dtype === 'f32' ? gradOf(t) : undefined));
    const accumulate = n.inputs.map((t, k) => !!grads[k] && written.has(t));
    // Read what the gradient needs; the planner keeps exactly that alive until here.
    const reads = [...new Set([...backwardNeeds(n), ...dOutputs.filter((d): d is Tensor => !!d)])];
    const temps = backwardTemps(n).map((spec) => {
      const t = g.tensor(spec.name, spec.shape, 'f32', 'value');
      if (spec.inPlaceOf) {
        t.viewOf = spec.inPlaceOf;
        t.inPlace = true;
      }
      return t;
    });
    const split = backwardSplit(n, temps);
    const tailGrads = (split?.inputs ?? []).map((k) => grads[k]).filter((d): d is Tensor => !!d);
    const outs = [...grads.filter((d): d is Tensor => !!d && !tailGrads.includes(d)), ...temps];
    const b: Node = g.addNode(n.op, 'backward', reads, outs, { accumulate, split: tailGrads.length > 0 });
    b.temps = temps;
    b.forward = n;
    b.grads = grads;
    b.dOutputs = dOutputs;
    n.attrs.backward = b;
    if (tailGrads.length) {
      const tail = g.addNode(n.op, 'backward', split!.reads, tailGrads, { accumulate, part: 'gradients' });
      tail.forward = n;
      tail.grads = grads;
      tail.dOutputs = dOutputs;
    }
    n.inputs.forEach((t, k) => grads[k] && written.add(t));
  }

  const params = new Map<Tensor, Tensor>();
  for (const t of g.tensors) {
    if (t.role !== 'param') continue;
    const d = grad.get(t);
    if (!d || !written.has(t)) throw new GraphError(`autodiff: parameter ${t} gets no gradient from the loss`);
    params.set(t, d);
  }
  return params;
}
