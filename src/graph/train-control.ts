// What an optimizer config adds to a training graph besides the per-parameter updates: weight decay
// per parameter group, a learning-rate schedule and global-norm clipping, all run on the GPU inside
// the step's one submit (kernels: src/kernels/train-control.ts, src/kernels/optimizer.ts).
import { GraphError } from './errors.js';
import type { Graph, Node } from './graph.js';
import type { Tensor } from './tensor.js';
import { checkSchedule, type Schedule } from '../kernels/train-control.js';
import { GpuError } from '../gpu/context.js';

export type { Schedule, ScheduleKind } from '../kernels/train-control.js';
export { SCHEDULES, scheduledLr } from '../kernels/train-control.js';

/** A parameter as a weight-decay rule sees it. */
export interface ParamInfo {
  name: string;
  shape: readonly number[];
}

/**
 * The default parameter groups for weight decay: a parameter decays when it has two or more
 * dimensions (dense and recurrent weight matrices, conv filters, embedding tables); one-dimensional
 * parameters do not (biases, and the scales and offsets of batch and layer normalisation), as most
 * AdamW recipes do.
 */
export function decaysByDefault(p: ParamInfo): boolean {
  return p.shape.length >= 2;
}

/** The update node's attributes for schedule, clipping and weight decay (merged with the optimizer's own). */
export interface ControlAttrs {
  weightDecay: number;
  decoupled: boolean;
  scheduled: boolean;
  clipped: boolean;
}

/** The op of the node that computes the global gradient norm and the clip scale. */
export const CLIP_OP = 'clip_global_norm';

/** Options of the optimizer config that this module reads (see OptimizerConfig in recorder.ts). */
export interface ControlConfig {
  kind: string;
  lr: number;
  weightDecay?: number;
  decays?: (p: ParamInfo) => boolean;
  schedule?: Schedule;
  clipNorm?: number;
}

/** Throws a GraphError naming the bad option. */
export function checkControl(opt: ControlConfig): void {
  const wd = opt.weightDecay ?? 0;
  if (!(wd >= 0) || !Number.isFinite(wd)) throw new GraphError(`optimizer: weightDecay must be a finite number ≥ 0, got ${opt.weightDecay}`);
  if (opt.kind === 'adamw' && wd > 0 && !(opt.lr * wd < 1)) throw new GraphError(`optimizer: AdamW shrinks each weight by lr·weightDecay per step; ${opt.lr}·${wd} must be below 1`);
  if (opt.clipNorm !== undefined && (!(opt.clipNorm > 0) || !Number.isFinite(opt.clipNorm))) throw new GraphError(`optimizer: clipNorm must be a positive number, got ${opt.clipNorm}`);
  if (opt.schedule) {
    try {
      checkSchedule(opt.schedule, opt.lr, 'optimizer schedule');
    } catch (e) {
      if (e instanceof GpuError) throw new GraphError(e.message);
      throw e;
    }
  }
}

/** Whether the step needs the GPU control buffer (a schedule other than a bare constant, or clipping). */
export function needsControl(opt: ControlConfig): boolean {
  return !!opt.schedule || opt.clipNorm !== undefined;
}

/** The control attributes of one parameter's update node. */
export function controlAttrs(opt: ControlConfig, param: Tensor): ControlAttrs {
  const wd = opt.weightDecay ?? 0;
  const decays = wd > 0 && (opt.decays ?? decaysByDefault)({ name: param.name, shape: param.shape });
  return { weightDecay: decays ? wd : 0, decoupled: opt.kind === 'adamw', scheduled: !!opt.schedule, clipped: opt.clipNorm !== undefined };
}

/** Adds the node reading every gradient that computes the clip scale (with clipping on). */
export function addClipNode(g: Graph, grads: Tensor[], clipNorm: number): void {
  g.addNode(CLIP_OP, 'update', grads, [], { clipNorm });
}

/**
 * The schedule with clipping: every forward and backward node, then the clip node (every gradient
 * is complete), then the updates that read its scale.
 */
export function clippedOrder(nodes: readonly Node[]): Node[] {
  const clip = nodes.filter((n) => n.op === CLIP_OP);
  if (clip.length !== 1) throw new GraphError(`a clipped step needs one ${CLIP_OP} node, found ${clip.length}`);
  return [...nodes.filter((n) => n.phase !== 'update'), clip[0], ...nodes.filter((n) => n.phase === 'update' && n.op !== CLIP_OP)];
}
