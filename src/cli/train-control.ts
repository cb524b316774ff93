// The CLI's training-control settings: weight decay, learning-rate schedule and warm-up, gradient
// clipping, label smoothing and early stopping. Given as flags (args.ts) or as fields of a model
// file's "training" object (model-file.ts, snake_case); turned here into the Trainer's options.
import type { OptimizerConfig } from '../graph/recorder.js';
import { SCHEDULES, type ScheduleKind } from '../kernels/train-control.js';

export { SCHEDULES, type ScheduleKind };

/** AdamW's weight decay when none is given: PyTorch's default. */
export const ADAMW_DEFAULT_DECAY = 0.01;

/** The settings, as TrainArgs and TrainingDefaults hold them (undefined: not given). */
export interface TrainingControl {
  weightDecay?: number;
  schedule?: ScheduleKind;
  decaySteps?: number;
  decayRate?: number;
  minLr?: number;
  warmup?: number;
  clipNorm?: number;
  labelSmoothing?: number;
  earlyStop?: number;
}

type Key = keyof TrainingControl;
type Kind = 'int' | 'float' | 'schedule';

/** Each setting: its flag, its field in a model file's "training", its kind, and the range it must be in. */
export const CONTROL_FIELDS: { key: Key; flag: string; field: string; kind: Kind; min?: number; minOpen?: boolean; below?: number; help: string; arg: string }[] = [
  { key: 'weightDecay', flag: 'weight-decay', field: 'weight_decay', kind: 'float', min: 0, arg: 'X', help: `weight decay: L2 (g += X·w) for sgd and adam, decoupled for adamw (default ${ADAMW_DEFAULT_DECAY} there, else 0); weight matrices only, not biases` },
  { key: 'schedule', flag: 'schedule', field: 'schedule', kind: 'schedule', arg: SCHEDULES.join('|'), help: 'learning-rate schedule, computed on the GPU from the step: constant (default), step (x decay-rate every decay-steps), exponential (x decay-rate^(step/decay-steps)), cosine (to min-lr over decay-steps)' },
  { key: 'decaySteps', flag: 'decay-steps', field: 'decay_steps', kind: 'int', min: 1, arg: 'N', help: 'the schedule\'s N: steps between drops (step), per factor (exponential), to the minimum (cosine; default: the rest of the training after the warm-up)' },
  { key: 'decayRate', flag: 'decay-rate', field: 'decay_rate', kind: 'float', min: 0, minOpen: true, arg: 'X', help: 'the factor of the step and exponential schedules, e.g. 0.5' },
  { key: 'minLr', flag: 'min-lr', field: 'min_lr', kind: 'float', min: 0, arg: 'X', help: 'the cosine schedule\'s final learning rate (default 0), below --lr' },
  { key: 'warmup', flag: 'warmup', field: 'warmup', kind: 'int', min: 0, arg: 'N', help: 'linear warm-up over the first N steps (lr·(step+1)/N), in front of the schedule' },
  { key: 'clipNorm', flag: 'clip-norm', field: 'clip_norm', kind: 'float', min: 0, minOpen: true, arg: 'X', help: 'clip the gradients by their global norm: scale all of them by X/norm when the norm is above X' },
  { key: 'labelSmoothing', flag: 'label-smoothing', field: 'label_smoothing', kind: 'float', min: 0, below: 1, arg: 'X', help: 'label smoothing of the training cross-entropy, in [0, 1): targets (1-X)·onehot + X/classes' },
  { key: 'earlyStop', flag: 'early-stop', field: 'early_stop', kind: 'int', min: 1, arg: 'N', help: 'stop after N evaluations (one per epoch) without a better validation loss; --save then keeps the best one' },
];

/** Why `v` is out of the setting's range (a phrase), or undefined when it is in range. */
export function outOfRange(f: (typeof CONTROL_FIELDS)[number], v: number): string | undefined {
  if (f.min !== undefined && (f.minOpen ? !(v > f.min) : !(v >= f.min))) return f.minOpen ? `must be greater than ${f.min}` : `must be ${f.min} or more`;
  if (f.below !== undefined && !(v < f.below)) return `must be below ${f.below}`;
  return undefined;
}

/** Throws `error(message)` for a bad combination; returns the Trainer's optimizer, label smoothing and early stop. */
export function resolveControl(
  base: { kind: 'sgd' | 'adam' | 'adamw'; lr: number },
  c: TrainingControl,
  ctx: { totalSteps: number; validation: number; mse: boolean; eval: boolean; source: (k: Key) => string },
  error: (message: string) => Error,
): { optimizer: OptimizerConfig; labelSmoothing?: number; earlyStop?: number } {
  const name = (k: Key) => ctx.source(k);
  const kind = c.schedule ?? 'constant';
  const uses: Record<ScheduleKind, Key[]> = { constant: [], step: ['decaySteps', 'decayRate'], exponential: ['decaySteps', 'decayRate'], cosine: ['decaySteps', 'minLr'] };
  for (const k of ['decaySteps', 'decayRate', 'minLr'] as const) {
    if (c[k] !== undefined && !uses[kind].includes(k)) {
      throw error(`${name(k)} has no effect with the ${kind} schedule: leave it out, or give ${name('schedule')} ${SCHEDULES.filter((s) => uses[s].includes(k)).join('|')}`);
    }
  }
  if (kind === 'step' || kind === 'exponential') {
    for (const k of ['decaySteps', 'decayRate'] as const) {
      if (c[k] === undefined) throw error(`the ${kind} schedule needs ${name(k)}: give e.g. ${name('decaySteps')} 1000 ${name('decayRate')} 0.5`);
    }
  }
  let decaySteps = c.decaySteps;
  const warmup = c.warmup ?? 0;
  if (kind === 'cosine' && decaySteps === undefined) {
    decaySteps = ctx.totalSteps - warmup;
    if (decaySteps < 1) throw error(`the cosine schedule has no steps left after a warm-up of ${warmup} in ${ctx.totalSteps} training steps: give ${name('decaySteps')} N or a shorter ${name('warmup')}`);
  }
  if (c.minLr !== undefined && !(c.minLr <= base.lr)) throw error(`${name('minLr')} ${c.minLr} is above the learning rate ${base.lr}: give a final rate at most --lr`);
  const wd = c.weightDecay ?? (base.kind === 'adamw' ? ADAMW_DEFAULT_DECAY : 0);
  if (base.kind === 'adamw' && !(base.lr * wd < 1)) throw error(`${name('weightDecay')} ${wd} with --lr ${base.lr}: AdamW shrinks each weight by lr·weight-decay per step, which must be below 1`);
  if (c.labelSmoothing && ctx.mse) throw error(`${name('labelSmoothing')} is for a cross-entropy loss, and this model's loss is mean_squared_error: leave it out`);
  if (c.earlyStop !== undefined && ctx.validation < 1) throw error(`${name('earlyStop')} needs a validation set to watch: give --val N (N ≥ 1)`);
  if (c.earlyStop !== undefined && ctx.eval) throw error(`${name('earlyStop')} has no effect with --eval (no training): leave it out`);
  const schedule = c.schedule !== undefined || warmup > 0
    ? { kind, warmup, decaySteps, decayRate: c.decayRate, minLr: c.minLr }
    : undefined;
  const optimizer: OptimizerConfig = {
    kind: base.kind, lr: base.lr,
    ...(wd > 0 ? { weightDecay: wd } : {}),
    ...(schedule ? { schedule } : {}),
    ...(c.clipNorm !== undefined ? { clipNorm: c.clipNorm } : {}),
  };
  return { optimizer, labelSmoothing: c.labelSmoothing, earlyStop: c.earlyStop };
}
