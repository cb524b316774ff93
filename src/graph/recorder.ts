import type { GpuContext } from '../gpu/context.js';
import { DispatchEncoder, type Dispatch } from '../gpu/dispatch.js';
import type { PassTimer } from '../gpu/profiler.js';
import { prepareStepIncrement } from '../kernels/step.js';
import { softmaxXentAdvancesStep } from '../kernels/softmax-xent.js';
import { prepareLrSchedule } from '../kernels/train-control.js';
import { buildBackward } from './autodiff.js';
import { GraphError, type Graph, type Node } from './graph.js';
import { opRule, type GradientRequest, type LowerEnv, type Lowered } from './registry.js';
import { lowerUpdate } from './update.js';
import { fuseUpdates } from './fuse-updates.js';
import { fuseActivationGrads } from './fuse-activation-grads.js';
import { fuseAccuracy } from './fuse-accuracy.js';
import { addClipNode, checkControl, clippedOrder, controlAttrs, needsControl, type ParamInfo, type Schedule } from './train-control.js';
import { planBuffers, type Plan } from './planner.js';
import type { Tensor } from './tensor.js';

/** The optimizer a training graph updates its parameters with. */
export interface OptimizerConfig {
  /** 'adamw': Adam with decoupled weight decay (PyTorch AdamW). */
  kind: 'sgd' | 'adam' | 'adamw';
  /** The base learning rate (the schedule's starting rate). */
  lr: number;
  /** SGD with momentum (TF MomentumOptimizer). */
  momentum?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /**
   * Weight decay (default 0). sgd and adam: L2 added to the gradient as PyTorch's weight_decay,
   * g += wd·p (after clipping); adamw: decoupled, p −= lr·wd·p before the Adam step, lr being
   * this step's scheduled rate (PyTorch AdamW).
   */
  weightDecay?: number;
  /**
   * Which parameters decay (the parameter groups). Default: those with two or more dimensions
   * (weights, filters, embeddings), not biases or normalisation scales and offsets (decaysByDefault).
   */
  decays?: (param: ParamInfo) => boolean;
  /** A learning-rate schedule (with an optional warm-up), computed on the GPU from the step counter. */
  schedule?: Schedule;
  /** Clip the gradients by their global norm: g ·= clipNorm / max(‖g‖, clipNorm), before the updates. */
  clipNorm?: number;
}

/** How a graph is compiled: its loss and optimizer, the shared step counter, and the tensors kept readable. */
export interface CompileOptions {
  /** The loss to minimise; with `optimizer`, the step gets backward and update passes. */
  loss?: Tensor;
  optimizer?: OptimizerConfig;
  /** u32 GPU step counter shared by the graphs of a model (dropout masks, Adam's t). */
  stepCounter: GPUBuffer;
  /** Advance the step counter once in each step (training graphs). */
  incrementStep?: boolean;
  /**
   * With incrementStep: advance it in the loss's kernel where it can (default true; see
   * lossAdvancesStep). false: in a dispatch of its own at the end of the step (for comparisons).
   */
  advanceStepInLoss?: boolean;
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
  /**
   * Apply optimizer updates in the epilogue of the products computing their gradients, where an op
   * can (default true; src/graph/fuse-updates.ts). false keeps every update a dispatch of its own
   * (for comparisons).
   */
  fuseUpdates?: boolean;
  /**
   * Apply an activation's derivative in the backward of the pooling that read its output, in place
   * of that output (default true; src/graph/fuse-activation-grads.ts). false: in the activation's own op.
   */
  fuseActivationGrads?: boolean;
  /**
   * Count a classifier's accuracy in its softmax cross-entropy's kernel (default true;
   * src/graph/fuse-accuracy.ts). false: in the accuracy op's own dispatch.
   */
  fuseAccuracy?: boolean;
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
  /** The GPU-written f32 [lr this step, clip scale, global norm, 0] (with a schedule or clipping). */
  readonly control: GPUBuffer | undefined;
  private readonly buffers = new Map<Tensor, GPUBuffer>();
  private readonly made: GPUBuffer[] = [];

  constructor(private readonly ctx: GpuContext, readonly graph: Graph, opts: CompileOptions) {
    this.paramGrads = new Map();
    const keep = [...(opts.keep ?? [])];
    const opt = opts.gradientsOnly ? undefined : opts.optimizer;
    if (opt) checkControl(opt);
    if (opts.optimizer || opts.gradientsOnly) {
      if (!opts.loss) throw new GraphError('compile: a backward pass needs a loss');
      this.paramGrads = buildBackward(graph, opts.loss);
      if (opts.gradientsOnly) keep.push(...this.paramGrads.values());
      else {
        if (opt!.clipNorm !== undefined) addClipNode(graph, [...this.paramGrads.values()], opt!.clipNorm);
        for (const [param, grad] of this.paramGrads) addUpdate(graph, param, grad, opt!);
        if (opt!.clipNorm === undefined && (opts.fuseUpdates ?? true)) fuseUpdates(ctx, graph, keep);
      }
      if (opts.fuseActivationGrads ?? true) fuseActivationGrads(ctx, graph, keep);
    }
    if (opts.fuseAccuracy ?? true) fuseAccuracy(graph);
    const limit = ctx.limits.maxStorageBufferBindingSize;
    for (const t of graph.tensors) {
      if (t.bytes > limit) {
        throw new GraphError(`${t} needs ${t.bytes} bytes, more than this adapter binds at once (maxStorageBufferBindingSize ${limit}): use a smaller batch`);
      }
    }
    const schedule = opt?.clipNorm !== undefined ? clippedOrder(graph.nodes) : interleaveUpdates(graph.nodes);
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
    // [lr, clip scale, global norm, 0], written on the GPU each step by the schedule and the clipping.
    const control = opt && needsControl(opt) ? ctx.upload(new Float32Array([opt.lr, 1, 0, 0]), 'training control') : undefined; // CONTROL_SIZE floats
    if (control) this.made.push(control);
    this.control = control;
    const inLoss = !!opts.incrementStep && (opts.advanceStepInLoss ?? true) && lossAdvancesStep(ctx, schedule);
    const env: LowerEnv = {
      ctx,
      buf: (t) => this.bufferOf(t),
      offset: (t) => t.offset,
      step: opts.stepCounter,
      stepAdvance: opts.incrementStep ? (inLoss ? 'loss' : 'end') : undefined,
      control,
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
      if (opt?.schedule) {
        this.ops.push({ label: 'learning rate', node: undefined, dispatches: [prepareLrSchedule(ctx, { lr: opt.lr, schedule: opt.schedule }, { step: opts.stepCounter, control: control! })] });
      }
      for (const n of schedule) {
        const dispatches = dispatchesOf(n);
        if (dispatches.length) this.ops.push({ label: opLabel(n), node: n, dispatches });
      }
      if (env.stepAdvance === 'end') {
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
    const dispatches = new DispatchEncoder(encoder);
    if (!timer) {
      dispatches.encode(this.ops.flatMap((op) => op.dispatches));
      return;
    }
    for (const op of this.ops) dispatches.encode(op.dispatches, timer.pass(op.label));
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
 * Whether the step's loss can advance the step counter (LowerEnv.stepAdvance 'loss'): a softmax
 * cross-entropy that is the last forward node, so that every forward reader of the counter (dropout)
 * runs before it and every backward node and update after it, on a device that allows the loss's
 * kernel the counter's binding.
 */
function lossAdvancesStep(ctx: GpuContext, schedule: readonly Node[]): boolean {
  const forward = schedule.filter((n) => n.phase === 'forward');
  const last = forward[forward.length - 1];
  if (last?.op !== 'xent') return false;
  const [B, C] = last.inputs[0].shape;
  return softmaxXentAdvancesStep(ctx, B, C);
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
    dOutputs: b.dOutputs!, grads: b.grads!, accumulate: b.accumulate!, temps: b.temps ?? [], parts: backward!.length, updates: b.updates ?? [],
    activated: b.activated ?? [], activationGrads: b.activationGrads ?? [],
  };
  return opRule(n.op).lower(env, n, grad);
}

function opLabel(n: Node): string {
  const name = (n.forward ?? n).attrs.name as string | undefined;
  const base = name ?? n.op;
  if (n.phase === 'backward') return `${base} backward${n.attrs.part ? ` (${n.attrs.part})` : ''}`;
  if (n.phase === 'update') return n.outputs.length ? `${n.op} ${n.outputs[0].name}` : n.op;
  return base;
}

function addUpdate(g: Graph, param: Tensor, grad: Tensor, opt: OptimizerConfig): void {
  if (!(opt.lr > 0) || !Number.isFinite(opt.lr)) throw new GraphError(`optimizer: learning rate must be a positive number, got ${opt.lr}`);
  const control = controlAttrs(opt, param);
  if (opt.kind === 'adam' || opt.kind === 'adamw') {
    const m = g.tensor(`${param.name}/adam_m`, param.shape, 'f32', 'state');
    const v = g.tensor(`${param.name}/adam_v`, param.shape, 'f32', 'state');
    g.addNode('adam', 'update', [grad], [param, m, v], { lr: opt.lr, beta1: opt.beta1 ?? 0.9, beta2: opt.beta2 ?? 0.999, epsilon: opt.epsilon ?? 1e-8, ...control });
  } else if (opt.kind === 'sgd') {
    const outs = [param];
    if (opt.momentum !== undefined) outs.push(g.tensor(`${param.name}/momentum`, param.shape, 'f32', 'state'));
    g.addNode('sgd', 'update', [grad], outs, { lr: opt.lr, momentum: opt.momentum, ...control });
  } else {
    throw new GraphError(`optimizer: kind ${JSON.stringify((opt as { kind: unknown }).kind)} is not one of sgd, adam, adamw`);
  }
}
