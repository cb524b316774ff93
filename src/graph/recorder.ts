import type { GpuContext } from '../gpu/context.js';
import { encodeDispatch, type Dispatch } from '../gpu/dispatch.js';
import type { PassTimer } from '../gpu/profiler.js';
import { prepareStepIncrement } from '../kernels/step.js';
import { buildBackward } from './autodiff.js';
import { GraphError, type Graph, type Node } from './graph.js';
import { opRule, type GradientRequest, type LowerEnv, type Lowered } from './registry.js';
import { lowerUpdate } from './update.js';
import { planBuffers, type Plan } from './planner.js';
import type { Tensor } from './tensor.js';

/** The optimizer a training graph updates its parameters with. */
export interface OptimizerConfig {
  kind: 'sgd' | 'adam';
  lr: number;
  /** SGD with momentum (TF MomentumOptimizer). */
  momentum?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

/** How a graph is compiled: its loss and optimizer, the shared step counter, and the tensors kept readable. */
export interface CompileOptions {
  /** The loss to minimise; with `optimizer`, the step gets backward and update passes. */
  loss?: Tensor;
  optimizer?: OptimizerConfig;
  /** u32 GPU step counter shared by the graphs of a model (dropout masks, Adam's t). */
  stepCounter: GPUBuffer;
  /** Advance the step counter at the end of each step (training graphs). */
  incrementStep?: boolean;
  /** Tensors read back after a step: their buffers are not reused within the step. */
  keep?: Tensor[];
  /**
   * Build the backward pass but no parameter update, keeping every parameter's gradient readable
   * after the step (`gradientOf`): for gradient checks and for callers with their own optimizer.
   */
  gradientsOnly?: boolean;
  /**
   * false: a buffer per planned tensor, no sharing (more memory). Each bound buffer then stands for
   * one tensor, so tests can check the shared plan against what the dispatches really bind.
   */
  reuseBuffers?: boolean;
}

/** One op's share of the step: its dispatches, for encoding and per-op profiling. */
export interface LoweredOp {
  label: string;
  node: Node | undefined;
  dispatches: Dispatch[];
}

/**
 * A graph compiled for one device: buffers planned and made, pipelines and bind groups created,
 * every dispatch of the step prepared. `encode()` records the step into a command encoder; it
 * creates nothing, so a step costs one command buffer and one submit.
 */
export class CompiledGraph {
  readonly ops: LoweredOp[];
  readonly plan: Plan;
  readonly paramGrads: Map<Tensor, Tensor>;
  private readonly buffers = new Map<Tensor, GPUBuffer>();
  private readonly made: GPUBuffer[] = [];

  constructor(private readonly ctx: GpuContext, readonly graph: Graph, opts: CompileOptions) {
    this.paramGrads = new Map();
    const keep = [...(opts.keep ?? [])];
    if (opts.optimizer || opts.gradientsOnly) {
      if (!opts.loss) throw new GraphError('compile: a backward pass needs a loss');
      this.paramGrads = buildBackward(graph, opts.loss);
      if (opts.gradientsOnly) keep.push(...this.paramGrads.values());
      else for (const [param, grad] of this.paramGrads) addUpdate(graph, param, grad, opts.optimizer!);
    }
    const limit = ctx.limits.maxStorageBufferBindingSize;
    for (const t of graph.tensors) {
      if (t.bytes > limit) {
        throw new GraphError(`${t} needs ${t.bytes} bytes, more than this adapter binds at once (maxStorageBufferBindingSize ${limit}): use a smaller batch`);
      }
    }
    const schedule = interleaveUpdates(graph.nodes);
    this.plan = planBuffers(schedule, keep, { reuse: opts.reuseBuffers ?? true });
    for (const slot of this.plan.slots) {
      const buf = ctx.storage(slot.bytes, `slot ${slot.index}: ${slot.tensors.map((t) => t.name).join(', ')}`.slice(0, 200));
      this.made.push(buf);
      for (const t of slot.tensors) this.buffers.set(t, buf);
    }
    for (const t of graph.tensors) {
      if ((t.role === 'input' || t.role === 'state') && !t.external) {
        const buf = ctx.storage(t.bytes, t.name);
        this.made.push(buf);
        this.buffers.set(t, buf);
      }
    }
    const env: LowerEnv = {
      ctx,
      buf: (t) => this.bufferOf(t),
      offset: (t) => t.offset,
      step: opts.stepCounter,
    };
    this.ops = [];
    // Each op prepares its forward and backward dispatches in one call, at its forward node; its
    // backward dispatches then go where its backward nodes are in the schedule.
    const backwardNodes = new Map<Node, Node[]>();
    for (const n of schedule) {
      if (n.phase === 'backward') backwardNodes.set(n.forward!, [...(backwardNodes.get(n.forward!) ?? []), n]);
    }
    const lowered = new Map<Node, Lowered>();
    const dispatchesOf = (n: Node): Dispatch[] => {
      if (n.phase === 'update') return lowerUpdate(env, n);
      if (n.phase === 'forward') {
        const l = lowerForward(env, n, backwardNodes.get(n));
        lowered.set(n, l);
        return l.forward;
      }
      const f = n.forward!;
      const part = backwardNodes.get(f)!.indexOf(n);
      const l = lowered.get(f);
      if (!l?.backward?.[part]) throw new GraphError(`${f.attrs.name ?? f.op} (${f.op}): its backward was not lowered with its forward`);
      return l.backward[part];
    };
    // Uniform and scratch buffers that kernels make while being prepared belong to this graph too.
    const made = ctx.collectBuffers(() => {
      for (const n of schedule) {
        const dispatches = dispatchesOf(n);
        if (dispatches.length) this.ops.push({ label: opLabel(n), node: n, dispatches });
      }
      if (opts.incrementStep) {
        this.ops.push({ label: 'step counter', node: undefined, dispatches: [prepareStepIncrement(ctx, {}, { counter: opts.stepCounter })] });
      }
    });
    this.made.push(...made);
  }

  /** The GPU buffer holding a tensor (views resolve to their root). */
  bufferOf(t: Tensor): GPUBuffer {
    const r = t.root;
    if (r.external) return r.external.buffer;
    const b = this.buffers.get(r);
    if (!b) throw new GraphError(`no buffer for ${t}`);
    return b;
  }

  /** The gradient tensor of a parameter (compiled with `gradientsOnly` to read it after a step). */
  gradientOf(param: Tensor): Tensor {
    const g = this.paramGrads.get(param);
    if (!g) throw new GraphError(`${param} has no gradient in this graph`);
    return g;
  }

  get dispatchCount(): number {
    return this.ops.reduce((a, o) => a + o.dispatches.length, 0);
  }

  /** FLOPs of one step, from the kernels' own counts. */
  get flops(): number {
    return this.ops.reduce((a, o) => a + o.dispatches.reduce((b, d) => b + (d.flops ?? 0), 0), 0);
  }

  /** Records the step: one compute pass, or one timed pass per op when a timer is given. */
  encode(encoder: GPUCommandEncoder, timer?: PassTimer): void {
    if (!timer) {
      const pass = encoder.beginComputePass();
      for (const op of this.ops) for (const d of op.dispatches) encodeDispatch(pass, d);
      pass.end();
      return;
    }
    for (const op of this.ops) {
      const pass = encoder.beginComputePass(timer.pass(op.label));
      for (const d of op.dispatches) encodeDispatch(pass, d);
      pass.end();
    }
  }

  /** Waits until every pipeline compiled; throws naming the shader and line otherwise. */
  async ready(): Promise<void> {
    const kernels = new Set(this.ops.flatMap((o) => o.dispatches.map((d) => d.kernel)));
    await Promise.all([...kernels].map((k) => k.ready));
  }

  /** Releases the buffers the compiled graph made. */
  destroy(): void {
    for (const b of this.made) this.ctx.release(b);
    this.made.length = 0;
  }
}

/**
 * Moves each parameter update to just after the last backward node that writes its gradient or
 * reads the parameter, so a gradient's buffer is free for the rest of the backward pass.
 */
function interleaveUpdates(nodes: readonly Node[]): Node[] {
  const updates = nodes.filter((n) => n.phase === 'update');
  const rest = nodes.filter((n) => n.phase !== 'update');
  const after = new Map<number, Node[]>();
  for (const u of updates) {
    const [grad] = u.inputs;
    const param = u.outputs[0];
    let at = -1;
    rest.forEach((n, i) => {
      if (n.outputs.includes(grad) || n.inputs.includes(param)) at = Math.max(at, i);
    });
    const list = after.get(at) ?? [];
    list.push(u);
    after.set(at, list);
  }
  const out: Node[] = [...(after.get(-1) ?? [])];
  rest.forEach((n, i) => out.push(n, ...(after.get(i) ?? [])));
  return out;
}

/** An op's dispatches through its registry rule, with what autodiff asked of its backward (if anything). */
function lowerForward(env: LowerEnv, n: Node, backward: Node[] | undefined): Lowered {
  const [b] = backward ?? [];
  const grad: GradientRequest | undefined = b && {
    dOutputs: b.dOutputs!, grads: b.grads!, accumulate: b.accumulate!, temps: b.temps ?? [], parts: backward!.length,
  };
  return opRule(n.op).lower(env, n, grad);
}

function opLabel(n: Node): string {
  const name = (n.forward ?? n).attrs.name as string | undefined;
  const base = name ?? n.op;
  if (n.phase === 'backward') return `${base} backward${n.attrs.part ? ` (${n.attrs.part})` : ''}`;
  if (n.phase === 'update') return `${n.op} ${n.outputs[0].name}`;
  return base;
}

function addUpdate(g: Graph, param: Tensor, grad: Tensor, opt: OptimizerConfig): void {
  if (!(opt.lr > 0) || !Number.isFinite(opt.lr)) throw new GraphError(`optimizer: learning rate must be a positive number, got ${opt.lr}`);
  if (opt.kind === 'adam') {
    const m = g.tensor(`${param.name}/adam_m`, param.shape, 'f32', 'state');
    const v = g.tensor(`${param.name}/adam_v`, param.shape, 'f32', 'state');
    g.addNode('adam', 'update', [grad], [param, m, v], { lr: opt.lr, beta1: opt.beta1 ?? 0.9, beta2: opt.beta2 ?? 0.999, epsilon: opt.epsilon ?? 1e-8 });
  } else {
    const outs = [param];
    if (opt.momentum !== undefined) outs.push(g.tensor(`${param.name}/momentum`, param.shape, 'f32', 'state'));
    g.addNode('sgd', 'update', [grad], outs, { lr: opt.lr, momentum: opt.momentum });
  }
}
