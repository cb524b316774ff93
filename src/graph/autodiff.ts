import { Graph, GraphError, type Node } from './graph.js';
import { findOpRule, lossOps } from './registry.js';
import type { Tensor } from './tensor.js';

/** Which op made the loss, checked: a [1] tensor that a registered loss op declares as its loss. */
function lossNodeOf(loss: Tensor): Node {
  const n = loss.producer;
  const rule = n && findOpRule(n.op);
  const known = lossOps().join(', ');
  if (loss.size !== 1) throw new GraphError(`autodiff: the loss must be a scalar [1] made by a loss op (${known}); got ${loss}`);
  if (!n || !rule || rule.gradient.kind !== 'loss') {
    throw new GraphError(`autodiff: ${loss} is not a loss: it comes from ${n ? `op "${n.op}"` : 'no op'}, not from a loss op (${known})`);
  }
  if (rule.gradient.loss(n) !== loss) {
    throw new GraphError(`autodiff: ${loss} is an output of ${n.attrs.name} (${rule.title}) but not its loss (${rule.gradient.loss(n)})`);
  }
  return n;
}

/**
 * Reverse-mode autodiff: walks the forward nodes from the loss backwards and appends one
 * backward node per forward node that a gradient reaches (two for an op whose rule splits its
 * backward). Returns the gradient of every parameter. A tensor read by several ops gets their
 * gradients summed (later writers add). Every op is reached through its registry rule.
 */
export function buildBackward(g: Graph, loss: Tensor): Map<Tensor, Tensor> {
  const lossNode = lossNodeOf(loss);
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
    const rule = findOpRule(n.op);
    const rg = rule?.gradient;
    if (rg?.kind === 'loss') {
      // The loss op's forward made the gradients of the loss with respect to its inputs: they seed autodiff.
      if (n !== lossNode) continue;
      for (const { input, gradient } of rg.seeds(n)) {
        const t = n.inputs[input];
        if (!t.requiresGrad) continue;
        if (grad.has(t)) throw new GraphError(`autodiff: ${t} feeds more than one loss`);
        grad.set(t, gradient);
        written.add(t);
      }
      continue;
    }
    const dOutputs = n.outputs.map((o) => (written.has(o) ? grad.get(o) : undefined));
    if (!dOutputs.some((d) => d)) continue;
    if (!rg || rg.kind === 'none') throw new GraphError(`autodiff: op "${n.op}" has no gradient`);
    if (rg.kind === 'view') {
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
    const reads = [...new Set([...rg.saves(n), ...dOutputs.filter((d): d is Tensor => !!d)])];
    const temps = (rg.temps?.(n) ?? []).map((spec) => {
      const t = g.tensor(spec.name, spec.shape, 'f32', 'value');
      if (spec.inPlaceOf) {
        t.viewOf = spec.inPlaceOf;
        t.inPlace = true;
      }
      return t;
    });
    const split = rg.split?.(n, temps);
    const tailGrads = (split?.inputs ?? []).map((k) => grads[k]).filter((d): d is Tensor => !!d);
    const outs = [...grads.filter((d): d is Tensor => !!d && !tailGrads.includes(d)), ...temps];
    const backwardNode = (inputs: Tensor[], outputs: Tensor[], attrs: Record<string, unknown>): Node => {
      const b = g.addNode(n.op, 'backward', inputs, outputs, attrs);
      b.forward = n;
      b.grads = grads;
      b.dOutputs = dOutputs;
      b.accumulate = accumulate;
      return b;
    };
    backwardNode(reads, outs, {}).temps = temps;
    if (tailGrads.length) backwardNode(split!.reads, tailGrads, { part: 'gradients' });
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
