// Training-state checkpoints for the CLI: --checkpoint-every, --keep, --resume, and a clean stop on
// SIGINT/SIGTERM. The state itself (what is in the file) is src/nn/state.ts; this module adds the
// run's own record (flags, loop position, history), the files (atomic writes, rotation, finding the
// newest intact one) and the checks that a resumed run is the same run. docs/CHECKPOINTS.md.
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, relative, isAbsolute } from 'node:path';
import { CheckpointError } from './checkpoint.js';
import { hyperParameters, type TrainArgs } from './args.js';
import type { EpochStats } from './plots.js';
import type { Mnist } from '../data/mnist.js';
import type { Model } from '../nn/model.js';
import { modelToSpec } from '../nn/spec.js';
import { decodeStateFile, StateError, type TrainerState } from '../nn/state.js';
import type { Trainer } from '../nn/trainer.js';

/** The flags a state file records, by flag name, and the TrainArgs field each sets. */
const RECORDED = {
  net: 'net', epochs: 'epochs', steps: 'steps', batch: 'batch', lr: 'lr', optimizer: 'optimizer', hidden: 'hidden',
  layers: 'layers', cell: 'cell', 'keep-prob': 'keepProb', seed: 'seed', data: 'data', val: 'val',
  save: 'save', 'checkpoint-every': 'checkpointEvery', keep: 'keep',
  'weight-decay': 'weightDecay', schedule: 'schedule', 'decay-steps': 'decaySteps', 'decay-rate': 'decayRate', 'min-lr': 'minLr',
  warmup: 'warmup', 'clip-norm': 'clipNorm', 'label-smoothing': 'labelSmoothing',
} as const satisfies Record<string, keyof TrainArgs>;
type Recorded = keyof typeof RECORDED;

/**
 * Flags that change the trajectory: a resumed run must have the checkpoint's. (--data and --val
 * are checked through the training set's fingerprint, the model through its spec; --epochs,
 * --steps, --save, --checkpoint-every and --keep may differ.)
 */
const TRAJECTORY: readonly Recorded[] = [
  'net', 'batch', 'lr', 'optimizer', 'hidden', 'layers', 'cell', 'keep-prob', 'seed',
  'weight-decay', 'schedule', 'decay-steps', 'decay-rate', 'min-lr', 'warmup', 'clip-norm', 'label-smoothing',
];

/** A verified state file to resume from, with the run record the CLI put in it. */
export interface ResumePoint {
  file: string;
  state: TrainerState;
  flags: Partial<Record<Recorded, string | number>>;
  /** The --model file the run was started with (the model itself comes from the recorded spec). */
  modelFile?: string;
  /** Steps done, 0-based index of the next step: the loop starts there, in that epoch's shuffled order. */
  loopStep: number;
  history: EpochStats[];
  best?: BestValidation;
}

export interface BestValidation {
  epoch: number;
  loss: number;
  accuracy: number;
}

/** A state file's name when the run has no --save: next to the run, named for the model. */
export function defaultStateFile(model: Model): string {
  return `${model.name.replace(/[^A-Za-z0-9_-]/g, '_') || 'model'}.state.safetensors`;
}

/** The kept files: FILE (newest), FILE.1, ..., FILE.(keep-1). */
export function keptPaths(file: string, keep: number): string[] {
  return Array.from({ length: keep }, (_, i) => (i === 0 ? file : `${file}.${i}`));
}

function readState(file: string): TrainerState {
  return decodeStateFile(new Uint8Array(fs.readFileSync(file)));
}

/** The files that may be kept copies of `file`'s run (FILE, FILE.N, and FILE's own base if it is a FILE.N), newest first by step. */
function intactSiblings(file: string): { path: string; step: number }[] {
  const bases = new Set([file, file.replace(/\.\d+$/, '')]);
  const out: { path: string; step: number }[] = [];
  const seen = new Set<string>();
  for (const base of bases) {
    const dir = dirname(base);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    const b = basename(base);
    for (const n of names) {
      if (n !== b && !(n.startsWith(`${b}.`) && /^\d+$/.test(n.slice(b.length + 1)))) continue;
      const p = join(dir, n);
      if (seen.has(p) || p === join(dirname(file), basename(file))) continue;
      seen.add(p);
      try {
        out.push({ path: p, step: readState(p).step });
      } catch { /* damaged or not a state file: not a candidate */ }
    }
  }
  return out.sort((a, b) => b.step - a.step);
}

/** What to do instead when `file` cannot be resumed: the newest intact kept file, or start again. */
function insteadOf(file: string): string {
  const intact = intactSiblings(file);
  if (intact.length === 0) return 'no intact training-state file is kept next to it: start the run again without --resume';
  const best = intact[0];
  return `the newest intact one is ${best.path} (step ${best.step}): resume with --resume ${best.path}`;
}

/**
 * Reads and verifies --resume FILE. Throws CheckpointError (one line) when FILE is
 * missing, damaged or not a training state, naming the newest intact kept file.
 */
export function openResume(file: string): ResumePoint {
  let state: TrainerState;
  try {
    state = readState(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new CheckpointError(`cannot resume: ${file} does not exist; ${insteadOf(file)}`);
    if (err.code === 'EISDIR') throw new CheckpointError(`cannot resume: ${file} is a folder; give --resume a training-state file`);
    if (e instanceof StateError) {
      const what = e.kind === 'damaged' ? 'is damaged' : 'cannot be resumed';
      throw new CheckpointError(`cannot resume: ${file} ${what}: ${e.message}; ${insteadOf(file)}`);
    }
    throw new CheckpointError(`cannot resume: cannot read ${file}: ${err.message.split('\n')[0]}`);
  }
  const m = state.metadata;
  let flags: ResumePoint['flags'];
  let history: EpochStats[];
  let best: BestValidation | undefined;
  try {
    flags = JSON.parse(m.flags ?? 'null');
    history = JSON.parse(m.history ?? '[]');
    best = m.best_validation ? JSON.parse(m.best_validation) : undefined;
    if (typeof flags !== 'object' || flags === null) throw new Error('no flags');
  } catch {
    throw new CheckpointError(`cannot resume: ${file} is a training state without the CLI's run record (flags): it was saved by a library call, not by --checkpoint-every`);
  }
  const loopStep = Number(m.loop_step);
  if (!Number.isSafeInteger(loopStep) || loopStep < 0) throw new CheckpointError(`cannot resume: ${file} records no loop_step`);
  const modelFile = typeof m.model_file === 'string' && m.model_file !== '' ? m.model_file : undefined;
  return { file, state, flags, modelFile, loopStep, history, best };
}

/** Sets every flag the resumed run recorded that the command line did not give (--epochs and --steps as one). */
export function applyRecordedFlags(r: ResumePoint, args: TrainArgs): void {
  const given = args.given;
  const lengthGiven = given.has('epochs') || given.has('steps');
  const a = args as unknown as Record<string, unknown>;
  for (const [flag, key] of Object.entries(RECORDED) as [Recorded, keyof TrainArgs][]) {
    if (given.has(flag) || ((flag === 'epochs' || flag === 'steps') && lengthGiven)) continue;
    a[key] = r.flags[flag];
  }
}

/** The training set's fingerprint: SHA-256 of its examples and labels (a different --data or --val changes it). */
export function dataFingerprint(data: Mnist): string {
  const h = createHash('sha256');
  const t = data.train;
  h.update(JSON.stringify({ count: t.count, shape: t.shape, classes: t.classes }));
  h.update(new Uint8Array(t.images.buffer, t.images.byteOffset, t.images.byteLength));
  h.update(new Uint8Array(t.labels.buffer, t.labels.byteOffset, t.labels.byteLength));
  return h.digest('hex').slice(0, 32);
}

const show = (v: unknown) => (v === undefined || v === null ? '(none)' : String(v));

/**
 * Checks, before any GPU work, that this run is the checkpoint's run: the same trajectory flags,
 * model and training data, and steps left to train. Throws CheckpointError naming what differs.
 */
export function checkResume(r: ResumePoint, args: TrainArgs, model: Model, data: Mnist, totalSteps: number): void {
  const a = args as unknown as Record<string, unknown>;
  const saved: string[] = [];
  const now: string[] = [];
  for (const flag of TRAJECTORY) {
    const was = r.flags[flag];
    const is = a[RECORDED[flag]];
    if (show(was) !== show(is)) {
      saved.push(`--${flag} ${show(was)}`);
      now.push(`--${flag} ${show(is)}`);
    }
  }
  if (r.state.metadata.data_sha256 !== dataFingerprint(data)) {
    saved.push(`training data ${show(r.flags.data ?? 'bundled MNIST')} --val ${show(r.flags.val)}`);
    now.push(`${show(args.data ?? 'bundled MNIST')} --val ${args.val} (different examples)`);
  }
  if (saved.length === 0 && r.state.metadata.model_spec !== JSON.stringify(modelToSpec(model))) {
    saved.push(`model ${r.modelFile ?? show(r.flags.net)}`);
    now.push(`a different model (${args.model ?? args.net ?? 'its spec'} differs)`);
  }
  if (saved.length) {
    throw new CheckpointError(`cannot resume ${r.file}: it was saved with ${saved.join(', ')} but this run has ${now.join(', ')}; give the checkpoint's flags (or leave them out: --resume takes them from the file), or start a new run without --resume`);
  }
  if (r.loopStep >= totalSteps) {
    throw new CheckpointError(`nothing to resume: ${r.file} is at step ${r.loopStep} and this run has ${totalSteps} steps; give a larger --steps (or --epochs) to train on`);
  }
}

/** A token as a POSIX shell reads it back. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=+,@%-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command that continues the run: this one with `--resume FILE` (and no other --resume). */
export function resumeCommand(argv: readonly string[], file: string): string {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume') i++;
    else if (!argv[i].startsWith('--resume=')) rest.push(argv[i]);
  }
  const script = process.argv[1] ? relative(process.cwd(), process.argv[1]) : 'dist/train.js';
  const entry = script && !script.startsWith('..') && !isAbsolute(script) ? script : process.argv[1] ?? 'dist/train.js';
  return ['node', entry, ...rest, '--resume', file].map(shellWord).join(' ');
}

/**
 * Test hooks (not user flags): WEBGPU_TRAIN_TEST_SIGNAL_AT_STEP="N:SIGNAL" sends the process SIGNAL
 * (SIGKILL, SIGINT, SIGTERM) right after training step N is submitted, so tests stop a run at a
 * chosen moment with a real signal.
 */
const SIGNAL_AT = (() => {
  const m = /^(\d+):(SIGKILL|SIGINT|SIGTERM)$/.exec(process.env.WEBGPU_TRAIN_TEST_SIGNAL_AT_STEP ?? '');
  return m ? { step: Number(m[1]), signal: m[2] as NodeJS.Signals } : undefined;
})();

const EXIT_CODE: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * The CLI's side of a run with training-state files: where they go, when they are written, the
 * record of the run that goes in them, and the stop on SIGINT/SIGTERM.
 */
export class RunKeeper {
  readonly file: string;
  readonly paths: string[];
  /** True when --save gets the training state at the end (not just the parameters). */
  readonly stateMode: boolean;
  readonly startStep: number;
  readonly history: EpochStats[];
  best: BestValidation | undefined;
  private readonly controller = new AbortController();
  private signalName: NodeJS.Signals | undefined;
  private rotationChecked = false;
  private fingerprint: string | undefined;
  private readonly handlers: [NodeJS.Signals, () => void][] = [];

  constructor(private readonly args: TrainArgs, private readonly argv: readonly string[], model: Model, data: Mnist,
    private readonly perEpoch: number, resumed: ResumePoint | undefined, private readonly log: (s: string) => void) {
    this.file = args.save ?? defaultStateFile(model);
    this.paths = keptPaths(this.file, args.keep);
    this.stateMode = args.checkpointEvery !== undefined || resumed !== undefined;
    this.startStep = resumed?.loopStep ?? 0;
    this.history = resumed?.history ?? [];
    this.best = resumed?.best;
    this.fingerprint = resumed?.state.metadata.data_sha256;
    this.data = data;
    this.modelFile = resumed?.modelFile ?? args.model;
  }

  private readonly modelFile: string | undefined;
  private readonly data: Mnist;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Listens for SIGINT/SIGTERM: the first stops the loop after the step in flight, a second exits at once. */
  install(): void {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const h = () => {
        if (this.signalName) {
          process.stderr.write(`\n${sig} again: exiting now; the last complete state file is left as it was\n`);
          process.exit(EXIT_CODE[sig]);
        }
        this.signalName = sig;
        this.controller.abort();
      };
      process.on(sig, h);
      this.handlers.push([sig, h]);
    }
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.length = 0;
  }

  /** After step `step` (1-based) is submitted: the test hook, then a checkpoint when one is due. */
  afterStep(trainer: Trainer, step: number, totalSteps: number): Promise<void> | undefined {
    if (SIGNAL_AT && step === SIGNAL_AT.step) process.kill(process.pid, SIGNAL_AT.signal);
    const every = this.args.checkpointEvery;
    if (every !== undefined && step % every === 0 && step < totalSteps && !this.signalName) return this.write(trainer, step);
    return undefined;
  }

  /** Records an epoch's figures (for --plots after a resume, and the best validation). */
  noteEpoch(stats: EpochStats): void {
    this.history.push(stats);
    if (stats.valLoss !== undefined && (this.best === undefined || stats.valLoss < this.best.loss)) {
      this.best = { epoch: stats.epoch, loss: stats.valLoss, accuracy: stats.valAcc ?? NaN };
    }
  }

  /** The run's record that goes into the state file's metadata next to the trainer's own. */
  private record(loopStep: number): Record<string, string> {
    const a = this.args as unknown as Record<string, unknown>;
    const flags: Record<string, unknown> = {};
    for (const [flag, key] of Object.entries(RECORDED)) flags[flag] = a[key];
    return {
      ...hyperParameters(this.args), // so --load FILE (parameters only) reads it like a --save file
      flags: JSON.stringify(flags),
      model_file: this.modelFile ?? '',
      argv: JSON.stringify(this.argv),
      data_sha256: (this.fingerprint ??= dataFingerprint(this.data)),
      loop_step: String(loopStep),
      epoch: String(Math.floor(loopStep / this.perEpoch)),
      step_in_epoch: String(loopStep % this.perEpoch),
      shuffle_seed: String(this.args.seed),
      history: JSON.stringify(this.history),
      ...(this.best ? { best_validation: JSON.stringify(this.best) } : {}),
    };
  }

  /** Writes the state after `loopStep` steps to FILE, rotating the kept files. */
  async write(trainer: Trainer, loopStep: number): Promise<void> {
    const bytes = await trainer.saveState(this.record(loopStep));
    this.writeFile(bytes);
  }

  /**
   * Atomically: a temp file in FILE's folder, fsync, then FILE.(k-1) → FILE.k ... FILE → FILE.1,
   * and the temp file renamed to FILE. The first write of a run moves aside kept files that are
   * damaged (to NAME.damaged), so rotation never pushes out a good file for a damaged one.
   */
  private writeFile(bytes: Uint8Array): void {
    const dir = dirname(this.file);
    if (!this.rotationChecked) {
      for (const p of this.paths) {
        if (!fs.existsSync(p)) continue;
        try {
          readState(p);
        } catch (e) {
          if (e instanceof StateError && e.kind === 'damaged') {
            fs.renameSync(p, `${p}.damaged`);
            this.log(`${p} is damaged (${e.message}): moved to ${p}.damaged`);
          }
        }
      }
      this.rotationChecked = true;
    }
    const tmp = join(dir, `.${basename(this.file)}.${process.pid}.tmp`);
    let fd: number | undefined;
    try {
      fd = fs.openSync(tmp, 'w', 0o644);
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
      for (let i = this.paths.length - 1; i >= 1; i--) {
        if (fs.existsSync(this.paths[i - 1])) fs.renameSync(this.paths[i - 1], this.paths[i]);
      }
      fs.renameSync(tmp, this.file);
    } catch (e) {
      if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
      try { fs.unlinkSync(tmp); } catch { /* not there */ }
      const err = e as NodeJS.ErrnoException;
      throw new CheckpointError(`cannot write the training state to ${this.file}: ${err.code ? `${err.code} ` : ''}${err.message.split('\n')[0]}; the kept files are unchanged`);
    }
    try {
      const dfd = fs.openSync(dir, 'r');
      try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
    } catch { /* best effort: not every platform opens folders */ }
  }

  /**
   * After the loop stopped on a signal at `loopStep`: writes the state and prints one line naming
   * the file and the command that resumes it. Returns the exit code (130 SIGINT, 143 SIGTERM).
   */
  async stop(trainer: Trainer, loopStep: number): Promise<number> {
    const sig = this.signalName ?? 'SIGINT';
    await this.write(trainer, loopStep);
    const e = Math.floor(loopStep / this.perEpoch);
    process.stderr.write(`${sig}: stopped after step ${loopStep} (epoch ${e + 1}, ${loopStep % this.perEpoch} of ${this.perEpoch} steps); training state saved to ${this.file}${this.args.save ? '' : ' (no --save given: the default state file)'}; resume with: ${resumeCommand(this.argv, this.file)}\n`);
    return EXIT_CODE[sig];
  }

  get stopped(): boolean {
    return this.signalName !== undefined;
  }
}
