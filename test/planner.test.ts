// The buffer planner. Liveness and sharing on small hand-made graphs; on the real training graphs,
// the no-overlap invariant checked against what the compiled dispatches really bind (not against
// the node lists the planner itself reads), and the planned vs naive bytes of the cnn (batch 50)
// and rnn (batch 100) training steps, printed with and without the values written in place.
import { expect } from 'chai';
import { testContext } from './support/gpu.js';
import { Graph, type Node } from '../src/graph/graph.js';
import { planBuffers, isPlanned, type Plan } from '../src/graph/planner.js';
import { buildBackward } from '../src/graph/autodiff.js';
import type { Tensor } from '../src/graph/tensor.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';
import { parseArgs } from '../src/cli/args.js';
import type { GpuContext } from '../src/gpu/context.js';
import { boundBuffers } from '../src/gpu/dispatch.js';
import { CompiledGraph } from '../src/graph/recorder.js';

// The planner never touches parameter storage: a stand-in buffer will do.
const fake = {} as GPUBuffer;

/** [first, last] schedule index of every planned root tensor (views count for their root; keep lives to the end). */
function lifetimes(schedule: readonly Node[], keep: readonly Tensor[] = []): Map<Tensor, [number, number]> {
  const life = new Map<Tensor, [number, number]>();
  schedule.forEach((n, i) => {
    for (const t of [...n.inputs, ...n.outputs]) {
      const r = t.root;
      if (!isPlanned(r)) continue;
      const l = life.get(r);
      if (l) l[1] = i;
      else life.set(r, [i, i]);
    }
  });
  for (const t of keep) {
    const l = life.get(t.root);
    if (l) l[1] = schedule.length - 1;
  }
  return life;
}

/**
 * The planner's invariants: every planned tensor has a slot big enough, and tensors sharing a slot
 * have strictly disjoint lifetimes (a tensor written by node i never shares with one still read at i).
 * `schedule` may be the order the GPU runs the nodes in (the compiled ops): then the naive sum is not
 * recomputed, since nodes without dispatches (reshapes) are missing from it.
 */
function checkPlan(plan: Plan, schedule: readonly Node[], keep: readonly Tensor[] = [], complete = true): void {
  const life = lifetimes(schedule, keep);
  let naive = 0;
  for (const [t] of life) {
    const s = plan.slotOf.get(t);
    expect(s, `${t} has a slot`).to.not.equal(undefined);
    expect(s!.bytes, `slot ${s!.index} holds ${t}`).to.be.at.least(t.bytes);
    naive += Math.ceil(t.bytes / 16) * 16;
  }
  if (complete) expect(plan.naiveBytes, 'naive bytes = sum of the planned tensors').to.equal(naive);
  expect(plan.naiveBytes - plan.inPlaceBytes, 'naive bytes without in-place values = sum of the planned tensors').to.equal(naive);
  for (const slot of plan.slots) {
    const spans = slot.tensors.filter((t) => life.has(t)).map((t) => ({ t, span: life.get(t)! })).sort((a, b) => a.span[0] - b.span[0]);
    for (let k = 1; k < spans.length; k++) {
      const prev = spans[k - 1], cur = spans[k];
      expect(prev.span[1], `slot ${slot.index}: ${prev.t} (nodes ${prev.span}) and ${cur.t} (nodes ${cur.span}) overlap`).to.be.lessThan(cur.span[0]);
    }
  }
}

describe('planner: liveness and sharing on small graphs', () => {
  it('tensors with disjoint lifetimes share a slot; a node never writes into its input\'s slot', () => {
    const g = new Graph();
    const x = g.input('x', [4, 8]);
    const a = g.activation(x, 'relu', 'a');
    const b = g.activation(a, 'tanh', 'b');
    const c = g.activation(b, 'sigmoid', 'c');
    const d = g.activation(c, 'relu', 'd');
    const plan = planBuffers(g.nodes);
    checkPlan(plan, g.nodes);
    const s = (t: Tensor) => plan.slotOf.get(t)!;
    expect(s(a), 'a (dead after node 1) and c share').to.equal(s(c));
    expect(s(b), 'b (dead after node 2) and d share').to.equal(s(d));
    expect(s(a), 'b is written while a is read').to.not.equal(s(b));
    expect(plan.slots.length).to.equal(2);
    expect(plan.naiveBytes).to.equal(4 * 128);
    expect(plan.plannedBytes).to.equal(2 * 128);
  });

  it('the outputs of a node never share with its inputs, even inputs read for the last time there', () => {
    const g = new Graph();
    const x = g.input('x', [3, 5]);
    const a = g.activation(x, 'relu', 'a');
    const b = g.activation(x, 'tanh', 'b');
    const c = g.tensor('c', [3, 5], 'f32', 'value');
    const e = g.tensor('e', [3, 5], 'f32', 'value');
    g.addNode('custom', 'forward', [a, b], [c, e]);
    const f = g.activation(c, 'relu', 'f');
    const plan = planBuffers(g.nodes);
    checkPlan(plan, g.nodes);
    const slots = (ts: Tensor[]) => ts.map((t) => plan.slotOf.get(t)!);
    const [sa, sb, sc, se, sf] = slots([a, b, c, e, f]);
    expect(new Set([sa, sb, sc, se]).size, 'a, b, c, e all distinct').to.equal(4);
    expect(sc, 'c and e are both outputs of one node').to.not.equal(se);
    // a and b die at the custom node: f, written after it, may take one of their slots
    expect([sa, sb, se], 'f reuses a slot freed at the node before').to.include(sf);
    expect(sf).to.not.equal(sc);
  });

  it('`keep` tensors live to the end of the step', () => {
    const g = new Graph();
    const x = g.input('x', [4, 8]);
    const a = g.activation(x, 'relu', 'a');
    const b = g.activation(a, 'tanh', 'b');
    const c = g.activation(b, 'sigmoid', 'c');
    const d = g.activation(c, 'relu', 'd');
    const plan = planBuffers(g.nodes, [a]);
    checkPlan(plan, g.nodes, [a]);
    const sa = plan.slotOf.get(a)!;
    for (const t of [b, c, d]) expect(plan.slotOf.get(t), `${t} does not reuse kept a's slot`).to.not.equal(sa);
    expect(plan.slots.length).to.equal(3);
    // keeping the last tensor changes nothing: it is alive at the end anyway
    expect(planBuffers(g.nodes, [d]).slots.length).to.equal(2);
  });

  it('views share their root\'s storage and keep it alive as long as they are read', () => {
    const g = new Graph();
    const x = g.input('x', [4, 6]);
    const a = g.activation(x, 'relu', 'a');
    const r = g.reshape(a, [24], 'flat');
    const b = g.activation(r, 'tanh', 'b');
    const c = g.activation(b, 'sigmoid', 'c');
    const d = g.activation(c, 'relu', 'd');
    const out = g.tensor('out', [24], 'f32', 'value');
    g.addNode('custom', 'forward', [r, d], [out]); // the view is read again at the end
    const plan = planBuffers(g.nodes);
    checkPlan(plan, g.nodes);
    expect(r.root).to.equal(a);
    expect(plan.slotOf.has(r), 'a view gets no slot of its own').to.equal(false);
    expect(plan.naiveBytes, 'a view adds no bytes').to.equal(5 * 96);
    const sa = plan.slotOf.get(a)!;
    for (const t of [b, c, d, out]) expect(plan.slotOf.get(t), `${t} must not overwrite a, read through its view until the end`).to.not.equal(sa);
    // without the late read, a dies at b's node and c can take its slot
    const g2 = new Graph();
    const x2 = g2.input('x', [4, 6]);
    const a2 = g2.activation(x2, 'relu', 'a');
    const r2 = g2.reshape(a2, [24], 'flat');
    const b2 = g2.activation(r2, 'tanh', 'b');
    const c2 = g2.activation(b2, 'sigmoid', 'c');
    const p2 = planBuffers(g2.nodes);
    checkPlan(p2, g2.nodes);
    expect(p2.slotOf.get(b2), 'b is written while a is read through the view').to.not.equal(p2.slotOf.get(a2));
    expect(p2.slotOf.get(c2)).to.equal(p2.slotOf.get(a2));
  });

  it('inputs, parameters and state are not planned; recurrent sequence state is', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const w = g.param('w', [3, 4], fake);
    const b = g.param('b', [4], fake);
    const y = g.dense(x, w, b, 'relu', 'fc');
    const labels = g.input('labels', [2], 'u32');
    const w2 = g.param('w2', [4, 5], fake);
    const logits = g.dense(y, w2, undefined, 'none', 'out');
    const { loss, lossSum } = g.softmaxCrossEntropy(logits, labels);
    const plan = planBuffers(g.nodes, [loss]);
    checkPlan(plan, g.nodes, [loss]);
    for (const t of [x, w, b, labels, w2, lossSum]) expect(plan.slotOf.has(t), `${t} (${t.role})`).to.equal(false);
    for (const t of [y, logits, loss]) expect(plan.slotOf.has(t), `${t}`).to.equal(true);
    const seq = g.input('seq', [3, 2, 4]);
    const rw = g.param('rw', [9, 20], fake);
    const rb = g.param('rb', [20], fake);
    const h = g.recurrent(seq, [{ w: rw, b: rb }], { cell: 'lstm', hidden: [5] });
    // The output is a view into the top layer's planned h [(T+1)·B·H], at the last step.
    expect(h.viewOf?.name).to.equal('lstm/layer0/h');
    expect(h.viewOffset).to.equal(3 * 2 * 5);
    const recPlan = planBuffers(g.nodes);
    expect(recPlan.slotOf.has(h), 'a view has no slot of its own').to.equal(false);
    expect(recPlan.slotOf.has(h.viewOf!), 'the sequence state is planned').to.equal(true);
  });

  it("a recurrent op's backward is two nodes: the bottom layer's weight gradient may take the cell states' memory", () => {
    const g = new Graph();
    const seq = g.input('seq', [6, 4, 8]);
    const labels = g.input('labels', [4], 'u32');
    const rw = g.param('rw', [8 + 16, 64], fake); // [I + H, 4H]
    const rb = g.param('rb', [64], fake);
    const ow = g.param('ow', [16, 10], fake);
    const h = g.recurrent(seq, [{ w: rw, b: rb }], { cell: 'lstm', hidden: [16] });
    const { loss } = g.softmaxCrossEntropy(g.dense(h, ow, undefined, 'none', 'out'), labels);
    const grads = buildBackward(g, loss);
    const back = g.nodes.filter((n) => n.phase === 'backward' && n.op === 'recurrent');
    expect(back.map((n) => n.attrs.part ?? 'through time')).to.deep.equal(['through time', 'gradients']);
    const c = g.tensors.find((t) => t.name === 'lstm/layer0/c')!;
    expect(back[0].inputs).to.include(c);
    expect(back[1].inputs, 'the gradients half reads no cell state').to.not.include(c);
    expect(back[1].outputs).to.include.members([grads.get(rw)!, grads.get(rb)!]);
    const plan = planBuffers(g.nodes);
    checkPlan(plan, g.nodes, [], false); // (the naive sum also counts the gate gradients made in place)
    const gateGrads = g.tensors.filter((t) => t.inPlace);
    expect(gateGrads.length, 'the gate gradients are written in place').to.be.greaterThan(0);
    expect(plan.inPlaceBytes).to.equal(gateGrads.reduce((a, t) => a + Math.ceil(t.bytes / 16) * 16, 0));
    expect(plan.slotOf.get(grads.get(rw)!), 'dW reuses the slot of c').to.equal(plan.slotOf.get(c));
  });
});

describe('planner: the real training graphs', function () {
  this.timeout(120_000);
  let ctx: GpuContext;
  const figures: string[] = [];
  before(async () => {
    ctx = await testContext();
  });
  after(() => {
    for (const f of figures) console.log(`      ${f}`);
  });

  /**
   * Compiles the trainer's net a second time with a buffer per tensor (no sharing): there each bound
   * buffer is one tensor, so the dispatches themselves say which tensors they touch, in run order.
   * Returns, per planned tensor id, the [first, last] global dispatch index binding it, and every
   * binding of a planned tensor that the dispatch's op does not declare.
   */
  function dispatchLifetimes(trainer: Trainer, opts: TrainerOptions) {
    const net = trainer.model.build(trainer.store, opts.batch, true, opts.seed);
    const naive = new CompiledGraph(ctx, net.graph, {
      loss: net.loss, optimizer: opts.optimizer, stepCounter: trainer.stepCounter, incrementStep: true,
      keep: [net.logits, net.predictions], reuseBuffers: false,
    });
    try {
      const real = trainer.graph;
      // the two compilations are of the same net: same tensors (by id) and the same dispatches in the same order
      expect(net.graph.tensors.map((t) => t.name)).to.deep.equal(real.graph.tensors.map((t) => t.name));
      expect(naive.ops.map((o) => `${o.label}×${o.dispatches.length}`)).to.deep.equal(real.ops.map((o) => `${o.label}×${o.dispatches.length}`));
      const tensorOf = new Map<GPUBuffer, Tensor>();
      // (A gradient applied in its product's epilogue is in no node: the plan rightly has no buffer for it.)
      for (const t of net.graph.tensors.filter((t) => isPlanned(t) && naive.plan.slotOf.has(t))) {
        const b = naive.bufferOf(t);
        expect(tensorOf.has(b), `${t} has a buffer of its own without reuse`).to.equal(false);
        tensorOf.set(b, t);
      }
      const life = new Map<number, [number, number]>();
      const undeclared: string[] = [];
      let k = 0;
      naive.ops.forEach((op, o) => {
        const declared = new Set(op.node ? [...op.node.inputs, ...op.node.outputs].map((t) => t.root.id) : []);
        op.dispatches.forEach((d, j) => {
          const realBound = boundBuffers(real.ops[o].dispatches[j]);
          boundBuffers(d).forEach((b, i) => {
            const t = tensorOf.get(b.buffer);
            if (!t) return; // a parameter, input, state, uniform or kernel scratch: not planned
            // the shared compilation binds the same tensor's slot here
            expect(realBound[i].buffer === real.bufferOf(real.graph.tensors[t.id]), `${d.label} "${b.name}": the shared plan binds ${t}'s slot`).to.equal(true);
            if (!declared.has(t.id)) undeclared.push(`${d.label} binds ${t} as "${b.name}" (${b.kind}), which op "${op.label}" does not declare`);
            const l = life.get(t.id);
            if (l) l[1] = k;
            else life.set(t.id, [k, k]);
          });
          k++;
        });
      });
      for (const t of [net.logits, net.predictions]) {
        const l = life.get(t.root.id);
        if (l) l[1] = k; // read back after the step
      }
      return { life, undeclared, naiveCompiledBytes: naive.plan.plannedBytes, dispatches: k };
    } finally {
      naive.destroy();
    }
  }

  // The nets exactly as `node dist/train.js --net NAME` trains them (the CLI's per-net defaults).
  for (const net of ['cnn', 'rnn'] as const) {
    it(`${net}: no two tensors of a slot are bound by overlapping dispatch ranges; planned bytes within a quarter of the most live at one dispatch`, async () => {
      const args = parseArgs(['--net', net]);
      const opts: TrainerOptions = {
        net, hidden: args.hidden, layers: args.layers, cell: args.cell, keepProb: args.keepProb, seed: args.seed,
        batch: args.batch, optimizer: { kind: args.optimizer, lr: args.lr },
      };
      // every byte the compilation allocates, to show what lies outside the plan
      const proto = Object.getPrototypeOf(ctx.device) as { createBuffer: GPUDevice['createBuffer'] };
      const create = proto.createBuffer;
      let allocated = 0;
      proto.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor) {
        allocated += desc.size;
        return create.call(this, desc);
      };
      let trainer: Trainer;
      try {
        trainer = await Trainer.create(ctx, opts);
      } finally {
        proto.createBuffer = create;
      }
      try {
        const g = trainer.graph;
        const { life, undeclared, naiveCompiledBytes, dispatches } = dispatchLifetimes(trainer, opts);
        const used = g.plan.slots.flatMap((s) => s.tensors).filter((t) => life.has(t.id));
        expect(used.length, 'the dispatches bind planned tensors').to.be.greaterThan(10);
        let shared = 0;
        for (const slot of g.plan.slots) {
          const spans = slot.tensors.filter((t) => life.has(t.id)).map((t) => ({ t, span: life.get(t.id)! })).sort((a, b) => a.span[0] - b.span[0]);
          for (let k = 1; k < spans.length; k++) {
            const prev = spans[k - 1], cur = spans[k];
            expect(prev.span[1], `slot ${slot.index}: ${prev.t} (dispatches ${prev.span}) and ${cur.t} (dispatches ${cur.span}) are both in use`).to.be.lessThan(cur.span[0]);
            shared++;
          }
        }
        expect(shared, 'some slots are really shared (else the check above checks nothing)').to.be.greaterThan(0);
        // Stricter: a binding the op does not declare is a read the planner cannot see, even where no slot is shared yet.
        expect(undeclared, 'dispatches bind only planned tensors their op declares').to.deep.equal([]);
        // The plan's naive figure without in-place values is what a buffer per tensor really allocates.
        expect(g.plan.naiveBytes - g.plan.inPlaceBytes, 'naive bytes without in-place values').to.equal(naiveCompiledBytes);
        const inPlace = g.graph.tensors.filter((t) => t.inPlace).reduce((a, t) => a + Math.ceil(t.bytes / 16) * 16, 0);
        expect(g.plan.inPlaceBytes, 'in-place bytes').to.equal(inPlace);
        const sum = (role: string) => g.graph.tensors.filter((t) => t.role === role && !t.viewOf).reduce((a, t) => a + t.bytes, 0);
        const withInPlace = g.plan.plannedBytes / g.plan.naiveBytes;
        const withoutInPlace = g.plan.plannedBytes / (g.plan.naiveBytes - g.plan.inPlaceBytes);
        const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
        figures.push(`${net} training step, batch ${args.batch}: planned ${mb(g.plan.plannedBytes)} in ${g.plan.slots.length} slots over ${dispatches} dispatches; ` +
          `naive ${mb(g.plan.naiveBytes)} counting in-place values as buffers (${(withInPlace * 100).toFixed(1)}%), ` +
          `${mb(g.plan.naiveBytes - g.plan.inPlaceBytes)} without them (${(withoutInPlace * 100).toFixed(1)}%); ` +
          `outside the plan: params ${mb(sum('param'))}, state ${mb(sum('state'))}, inputs ${mb(sum('input'))}; all buffers made by compiling ${mb(allocated)}`);
        expect(args.batch).to.equal(net === 'cnn' ? 50 : 100);
        // No plan can hold less than the most bytes live at one dispatch; the planner's target is to
        // come within a quarter of that bound (greedy by size), whatever the net's tensors are.
        const live = new Float64Array(dispatches + 1);
        for (const t of used) {
          const [from, to] = life.get(t.id)!;
          for (let k = from; k <= to; k++) live[k] += Math.ceil(t.bytes / 16) * 16;
        }
        const peak = Math.max(...live);
        figures.push(`${net}: the most bytes live at one dispatch ${mb(peak)}; planned / that = ${(g.plan.plannedBytes / peak).toFixed(3)}`);
        expect(g.plan.plannedBytes, `${net}: planned bytes at least the peak of live bytes`).to.be.at.least(peak);
        expect(g.plan.plannedBytes / peak, `${net}: planned / the most bytes live at once`).to.be.at.most(1.25);
      } finally {
        trainer.destroy();
      }
    });
  }
});
