// A seeded fuzz over flag combinations, graph shapes and trainer knobs. Each case is generated
// knowing which of its knobs are bad (a value outside the documented range, an unknown flag, a
// choice not offered, a shape that breaks an op's rule): a case with no bad knob must succeed, and
// its result is checked (parsed flags equal what was given or the documented defaults, built tensors
// have the shapes the op's formula gives, planned buffers are never shared by tensors alive at once,
// a compiled step gives a finite loss); a case with a bad knob must fail with the documented one-line
// error, and the error must name the bad knob (the flag, the op or the option). Anything else (a
// TypeError, a plain Error, a hang) fails the test and prints the seed and the case so that it can
// be re-run. Each test prints how many valid and bad cases it ran.
import { expect } from 'chai';
import { rng } from './support/cpu.js';
import { testContext } from './support/gpu.js';
import { ArgsError, CELLS, DEFAULT_SEED, DEFAULT_VAL, NETS, NET_DEFAULTS, MODEL_DEFAULTS, OPTIMIZERS, parseArgs, type NetName, type TrainArgs } from '../src/cli/args.js';
import { CheckpointError } from '../src/cli/checkpoint.js';
import { DataError } from '../src/data/mnist.js';
import { GpuError, type GpuContext } from '../src/gpu/context.js';
import { Graph, GraphError, type Node } from '../src/graph/graph.js';
import type { Tensor } from '../src/graph/tensor.js';
import { buildBackward } from '../src/graph/autodiff.js';
import { SCHEDULES } from '../src/kernels/train-control.js';
import { isPlanned, planBuffers, type Plan } from '../src/graph/planner.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';

const DOCUMENTED = [ArgsError, DataError, GraphError, GpuError, CheckpointError];

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** Runs a case: returns 'ok' or the documented error; rethrows anything else with the case attached. */
function classify(what: string, fn: () => void): 'ok' | Error {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof chaiAssertion) throw e;
    return documented(what, e);
  }
}

function documented(what: string, e: unknown): Error {
  if (!DOCUMENTED.some((cls) => e instanceof cls)) {
    const err = e as Error;
    throw new Error(`${what}: threw ${err?.name ?? typeof e} "${err?.message ?? String(e)}", not one of the documented errors\n${err?.stack ?? ''}`);
  }
  const msg = (e as Error).message;
  expect(msg, `${what}: one-line message`).not.to.include('\n');
  expect(msg.length, `${what}: a message`).to.be.greaterThan(10);
  return e as Error;
}

/** Valid and bad cases run, and what went wrong (printed in full when the test fails). */
class Tally {
  valid = 0;
  bad = 0;
  readonly problems: string[] = [];
  constructor(readonly title: string) {}
  report(): void {
    console.log(`      ${this.title}: ${this.valid} valid cases, ${this.bad} with a bad knob, ${this.problems.length} wrong`);
    expect(this.problems, this.problems.slice(0, 5).join('\n')).to.deep.equal([]);
    expect(this.valid, 'valid cases').to.be.greaterThan(0);
    expect(this.bad, 'bad cases').to.be.greaterThan(0);
  }
}

// ------------------------------------------------------------------ flags

/** A token as typed, and the number it spells as a decimal literal (undefined: not a number), and whether a whole one. */
interface Spelling { text: string; num?: number; whole: boolean }
const sp = (text: string, num?: number, whole = false): Spelling => ({ text, num, whole });
const NUMBER_SPELLINGS: Spelling[] = [
  sp('0', 0, true), sp('1', 1, true), sp('2', 2, true), sp('7', 7, true), sp('100', 100, true), sp('5000', 5000, true), sp('+4', 4, true),
  sp('-1', -1, true), sp('-30', -30, true), sp('4294967295', 4294967295, true), sp('4294967296', 4294967296, true),
  sp('99999999999999999999', 1e20, true), sp('1e3', 1e3), sp('2.5', 2.5), sp('0.5', 0.5), sp('.5', 0.5), sp('5.', 5),
  sp('1e-3', 1e-3), sp('-0.1', -0.1), sp('-1e-9', -1e-9), sp('1e400', Infinity), sp('1e-45', 1e-45), sp('0.999999', 0.999999),
  sp('1.000001', 1.000001), sp('ten'), sp(''), sp('0x10'), sp(' 3'), sp('NaN'), sp('Infinity'), sp('1,5'), sp('abc'),
];
const STRING_SPELLINGS = ['/tmp/x', 'a b', 'model.safetensors', '-', '--net', ''].map((t) => sp(t));

type FlagKind = 'int' | 'float' | 'choice' | 'string' | 'bool';
/** The documented flags (--help), each with its kind and what a valid value is. */
const FLAG_RULES: Record<string, { kind: FlagKind; ok?: (v: number) => boolean; choices?: readonly string[]; wrongChoices?: string[] }> = {
  epochs: { kind: 'int', ok: (v) => v >= 1 },
  steps: { kind: 'int', ok: (v) => v >= 1 },
  batch: { kind: 'int', ok: (v) => v >= 1 },
  hidden: { kind: 'int', ok: (v) => v >= 1 },
  layers: { kind: 'int', ok: (v) => v >= 1 },
  val: { kind: 'int', ok: (v) => v >= 0 },
  seed: { kind: 'int', ok: (v) => v >= 0 && v <= 0xffffffff },
  lr: { kind: 'float', ok: (v) => v > 0 },
  'keep-prob': { kind: 'float', ok: (v) => v > 0 && v <= 1 },
  optimizer: { kind: 'choice', choices: OPTIMIZERS, wrongChoices: ['SGD', 'adam2', ''] },
  cell: { kind: 'choice', choices: CELLS, wrongChoices: ['LSTM', 'gru2', ''] },
  data: { kind: 'string' }, save: { kind: 'string' }, load: { kind: 'string' }, trace: { kind: 'string' }, plots: { kind: 'string' },
  eval: { kind: 'bool' }, profile: { kind: 'bool' }, json: { kind: 'bool' }, help: { kind: 'bool' },
  // training control (src/cli/train-control.ts); rules between them are checked after parsing, with the data
  'weight-decay': { kind: 'float', ok: (v) => v >= 0 },
  schedule: { kind: 'choice', choices: SCHEDULES, wrongChoices: ['Cosine', 'linear', ''] },
  'decay-steps': { kind: 'int', ok: (v) => v >= 1 && v <= 0xffffffff },
  'decay-rate': { kind: 'float', ok: (v) => v > 0 },
  'min-lr': { kind: 'float', ok: (v) => v >= 0 },
  warmup: { kind: 'int', ok: (v) => v >= 0 && v <= 0xffffffff },
  'clip-norm': { kind: 'float', ok: (v) => v > 0 },
  'label-smoothing': { kind: 'float', ok: (v) => v >= 0 && v < 1 },
  'early-stop': { kind: 'int', ok: (v) => v >= 1 && v <= 0xffffffff },
};
/** The training-control flags' TrainArgs fields. */
const CONTROL_FIELD: Record<string, keyof TrainArgs> = {
  'weight-decay': 'weightDecay', schedule: 'schedule', 'decay-steps': 'decaySteps', 'decay-rate': 'decayRate', 'min-lr': 'minLr',
  warmup: 'warmup', 'clip-norm': 'clipNorm', 'label-smoothing': 'labelSmoothing', 'early-stop': 'earlyStop',
};
const NET_WRONG = ['MLP', 'lstm', ''];
const UNKNOWN = ['bogus', 'step', 'Net', 'lr0', 'keep_prob', 'hiden'];
const FIELD: Record<string, keyof TrainArgs> = { 'keep-prob': 'keepProb' };

/** One knob of a command line: its tokens; if bad, why and the names one of which the error must mention. */
interface FlagKnob {
  tokens: string[];
  flag?: string;
  value?: string | number | true;
  bad?: { why: string; names: string[] };
}

/** `--flag value` takes the next token as the value only if it does not look like a flag (a negative number does not). */
const takenAsValue = (s: Spelling) => !s.text.startsWith('-') || s.num !== undefined;

/** Whether `s` is a valid value of flag `name` (documented ranges), and what it parses to. */
function judge(name: string, s: Spelling): { ok: boolean; value?: string | number } {
  const rule = FLAG_RULES[name] ?? { kind: 'choice', choices: NETS };
  switch (rule.kind) {
    case 'int': return { ok: s.whole && Number.isSafeInteger(s.num) && rule.ok!(s.num!), value: s.num };
    case 'float': return { ok: s.num !== undefined && Number.isFinite(s.num) && rule.ok!(s.num), value: s.num };
    case 'choice': return { ok: rule.choices!.includes(s.text), value: s.text };
    default: return { ok: s.text !== '', value: s.text };
  }
}

/** A flag with a value, valid or (wantBad) not: the value is drawn among those whose validity is the one wanted. */
function valueKnob(r: Rand, name: string, wantBad: boolean, only?: string): FlagKnob {
  const inline = r() < 0.25;
  const pool = poolOf(name).filter((s) => only === undefined || s.text === only);
  const judged = pool.map((s) => ({ s, ...judge(name, s), consumed: inline || takenAsValue(s) }));
  const fitting = judged.filter((j) => (j.ok && j.consumed) !== wantBad);
  const j = pick(r, fitting);
  const tokens = inline ? [`--${name}=${j.s.text}`] : [`--${name}`, j.s.text];
  if (!wantBad) return { tokens, flag: name, value: j.value };
  return { tokens, flag: name, bad: { why: j.consumed ? `bad value ${JSON.stringify(j.s.text)}` : `value ${JSON.stringify(j.s.text)} looks like a flag`, names: [`--${name}`] } };
}

function boolKnob(r: Rand, name: string, wantBad: boolean): FlagKnob {
  if (wantBad) return { tokens: [`--${name}=${pick(r, ['1', 'true', ''])}`], flag: name, bad: { why: 'a switch given a value', names: [`--${name}`] } };
  return { tokens: [name === 'help' && r() < 0.5 ? '-h' : `--${name}`], flag: name, value: true };
}

interface FlagCase { argv: string[]; bad: FlagKnob['bad'][]; expected?: Partial<TrainArgs> }

const shuffle = <T>(r: Rand, xs: T[]): T[] => {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = int(r, 0, i);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
};

const VALUE_FLAGS = Object.keys(FLAG_RULES).filter((n) => FLAG_RULES[n].kind !== 'bool');
const BOOL_FLAGS = Object.keys(FLAG_RULES).filter((n) => FLAG_RULES[n].kind === 'bool');
/** The flags that only some nets take, and the net default that says which. */
const KNOB_OF: Record<string, 'hidden' | 'layers' | 'cell' | 'keepProb'> = { hidden: 'hidden', layers: 'layers', cell: 'cell', 'keep-prob': 'keepProb' };
const takes = (net: NetName, flag: string) => !KNOB_OF[flag] || NET_DEFAULTS[net][KNOB_OF[flag]] !== undefined;

function poolOf(name: string): Spelling[] {
  const rule = FLAG_RULES[name] ?? { kind: 'choice', choices: NETS, wrongChoices: NET_WRONG };
  if (rule.kind === 'int' || rule.kind === 'float') return NUMBER_SPELLINGS;
  if (rule.kind === 'string') return STRING_SPELLINGS;
  return [...rule.choices!, ...rule.wrongChoices!].map((t) => sp(t));
}

/** One documented mistake to plant in an otherwise valid command line, and the nets it needs. */
interface Planted { knobs: FlagKnob[]; without?: string; net?: (n: NetName) => boolean; isNet?: boolean; noNet?: boolean; first?: boolean; last?: boolean }

/** Every documented mistake: each bad value of each flag (both forms), and each rule between flags. */
function plantedMistakes(): Planted[] {
  const list: Planted[] = [];
  const bad = (why: string, ...names: string[]) => ({ why, names });
  for (const name of ['net', ...VALUE_FLAGS]) {
    for (const inline of [false, true]) {
      for (const s of poolOf(name)) {
        const consumed = inline || takenAsValue(s);
        if (consumed && judge(name, s).ok) continue;
        const tokens = inline ? [`--${name}=${s.text}`] : [`--${name}`, s.text];
        list.push({ knobs: [{ tokens, flag: name, bad: bad(`--${name} ${JSON.stringify(s.text)}`, `--${name}`) }], net: (n) => takes(n, name), isNet: name === 'net' });
      }
    }
    list.push({ knobs: [{ tokens: [`--${name}`], flag: name, bad: bad(`--${name} without a value`, `--${name}`) }], isNet: name === 'net', net: (n) => takes(n, name), last: true });
  }
  for (const name of BOOL_FLAGS) list.push({ knobs: [{ tokens: [`--${name}=1`], flag: name, bad: bad(`--${name} given a value`, `--${name}`) }] });
  for (const name of UNKNOWN) list.push({ knobs: [{ tokens: [`--${name}`, '3'], bad: bad('unknown flag', `--${name}`) }] });
  list.push({ knobs: [{ tokens: ['mlp'], bad: bad('stray word', '"mlp"') }], first: true });
  for (const tok of ['--', '-x']) list.push({ knobs: [{ tokens: [tok], bad: bad('stray token', JSON.stringify(tok)) }] });
  for (const [tokens, flag, value] of [[['--batch', '5'], 'batch', 5], [['--lr=0.5'], 'lr', 0.5], [['--json'], 'json', true], [['--data', 'a b'], 'data', 'a b']] as const) {
    list.push({ knobs: [{ tokens: [...tokens], flag, value }, { tokens: [...tokens], flag, bad: bad('given twice', `--${flag}`) }] });
  }
  for (const [flag, text, value] of [['hidden', '5', 5], ['layers', '2', 2], ['cell', 'gru', 'gru'], ['keep-prob', '0.5', 0.5]] as const) {
    list.push({ knobs: [{ tokens: [`--${flag}`, text], flag, value }], net: (n) => !takes(n, flag) }); // the rule between flags makes it bad
  }
  list.push({ knobs: [], noNet: true });
  list.push({ knobs: [{ tokens: ['--epochs', '2'], flag: 'epochs', value: 2 }, { tokens: ['--steps', '3'], flag: 'steps', value: 3 }] });
  list.push({ knobs: [{ tokens: ['--eval'], flag: 'eval', value: true }], without: 'load' });
  for (const f of ['epochs', 'steps', 'save']) {
    list.push({ knobs: [{ tokens: ['--eval'], flag: 'eval', value: true }, { tokens: ['--load', 'm.st'], flag: 'load', value: 'm.st' }, { tokens: [`--${f}`, '4'], flag: f, value: f === 'save' ? '4' : 4 }] });
  }
  return list;
}
const PLANTED = plantedMistakes();

/**
 * A command line meant to be valid: a net, then up to five other flags it takes, each with a valid
 * value (eval with load and without epochs, steps or save; not both epochs and steps); with
 * `plant`, one documented mistake put in as well.
 */
function validKnobs(r: Rand, plant?: Planted): FlagKnob[] {
  const knobs: FlagKnob[] = [];
  const help = !plant?.noNet && r() < 0.08;
  const nets = NETS.filter((n) => !plant?.net || plant.net(n));
  const net = pick(r, nets.length ? nets : NETS);
  if (!plant?.isNet && !plant?.noNet && !(help && r() < 0.5)) knobs.push(valueKnob(r, 'net', false, net));
  if (help) knobs.push(boolKnob(r, 'help', false));
  const planted = new Set((plant?.knobs ?? []).map((k) => k.flag));
  const names = shuffle(r, Object.keys(FLAG_RULES).filter((n) => n !== 'help' && takes(help && !knobs.length ? 'mlp' : net, n) && !planted.has(n)));
  const chosen = new Set(names.slice(0, int(r, 0, 5)));
  if (chosen.has('epochs')) chosen.delete('steps');
  if (chosen.has('eval')) {
    for (const f of ['epochs', 'steps', 'save']) chosen.delete(f);
    if (!planted.has('load')) chosen.add('load');
  }
  if (planted.has('eval') || planted.has('epochs') || planted.has('steps')) chosen.delete('eval');
  if (plant?.without) chosen.delete(plant.without);
  for (const name of chosen) knobs.push(FLAG_RULES[name].kind === 'bool' ? boolKnob(r, name, false) : valueKnob(r, name, false));
  if (plant) {
    const rest = plant.knobs.filter((k) => !k.bad || (!plant.first && !plant.last));
    knobs.push(...rest);
  }
  shuffle(r, knobs);
  if (plant?.first) knobs.unshift(...plant.knobs);
  if (plant?.last) knobs.push(...plant.knobs);
  return knobs;
}

/** A fully random command line: any flags, values bad now and then, structural mistakes now and then. */
function randomKnobs(r: Rand): FlagKnob[] {
  const knobs: FlagKnob[] = [];
  const u = r();
  if (u >= 0.06) knobs.push(valueKnob(r, 'net', u < 0.12));
  const names = Object.keys(FLAG_RULES);
  const chosen = new Set<string>();
  for (let k = int(r, 0, 5); k > 0; k--) chosen.add(pick(r, names));
  for (const name of chosen) {
    const wantBad = r() < 0.1;
    knobs.push(FLAG_RULES[name].kind === 'bool' ? boolKnob(r, name, wantBad) : valueKnob(r, name, wantBad));
  }
  // structural mistakes
  if (r() < 0.04) {
    const name = pick(r, UNKNOWN);
    knobs.push({ tokens: pick(r, [[`--${name}`], [`--${name}=3`], [`--${name}`, '3']]), bad: { why: 'unknown flag', names: [`--${name}`] } });
  }
  const valued = knobs.filter((k) => !k.bad && k.flag && k.flag !== 'help');
  if (r() < 0.04 && valued.length) {
    const twice = pick(r, valued);
    knobs.push({ tokens: [...twice.tokens], flag: twice.flag, bad: { why: 'given twice', names: [`--${twice.flag}`] } });
  }
  shuffle(r, knobs);
  // a stray word first (else it would be taken as the value of the flag before it), a flag-like one anywhere
  if (r() < 0.03) knobs.unshift({ tokens: ['mlp'], bad: { why: 'stray argument', names: ['"mlp"'] } });
  if (r() < 0.03) knobs.splice(int(r, 0, knobs.length), 0, { tokens: [pick(r, ['--', '-x'])], bad: { why: 'stray argument', names: ['"--"', '"-x"'] } });
  // a flag missing its value, last
  if (r() < 0.04) {
    const name = pick(r, names.filter((n) => FLAG_RULES[n].kind !== 'bool'));
    knobs.push({ tokens: [`--${name}`], flag: name, bad: { why: 'no value', names: [`--${name}`] } });
  }

  return knobs;
}

/** A command line's bad knobs, by the documented rules, and for a valid one the parse it must give. */
function judgeCase(knobs: FlagKnob[]): FlagCase {
  const argv = knobs.flatMap((k) => k.tokens);
  const bad = knobs.map((k) => k.bad).filter((b) => b);
  const value = new Map(knobs.filter((k) => !k.bad && k.flag).map((k) => [k.flag!, k.value!]));
  // rules between flags (--help): --net is required except with --help (then mlp fills the field) or
  // --load (the checkpoint names its model; the model defaults fill the rest, and the knobs are errors);
  // epochs or steps, not both; hidden, layers, cell and keep-prob only for nets with that knob;
  // --eval needs --load and takes no epochs, steps or save
  const help = value.has('help');
  const netKnob = knobs.find((k) => k.flag === 'net');
  const loadOnly = !netKnob && !help && knobs.some((k) => k.flag === 'load');
  if (!netKnob && !help && !loadOnly) bad.push({ why: '--net missing', names: ['--net'] });
  if (loadOnly) {
    for (const flag of ['hidden', 'layers', 'cell', 'keep-prob']) if (value.has(flag)) bad.push({ why: `--${flag} without --net`, names: [`--${flag}`] });
  }
  const net = (value.get('net') ?? (netKnob || loadOnly ? undefined : 'mlp')) as NetName | undefined;
  if (value.has('epochs') && value.has('steps')) bad.push({ why: 'both epochs and steps', names: ['--epochs', '--steps'] });
  if (net) {
    for (const [flag, key] of [['hidden', 'hidden'], ['layers', 'layers'], ['cell', 'cell'], ['keep-prob', 'keepProb']] as const) {
      if (value.has(flag) && NET_DEFAULTS[net][key] === undefined) bad.push({ why: `--${flag} for --net ${net}`, names: [`--${flag}`] });
    }
  }
  if (value.has('eval')) {
    if (!knobs.some((k) => k.flag === 'load')) bad.push({ why: '--eval without --load', names: ['--eval', '--load'] });
    for (const f of ['epochs', 'steps', 'save']) if (value.has(f)) bad.push({ why: `--${f} with --eval`, names: [`--${f}`] });
  }
  if (bad.length || (!net && !loadOnly)) return { argv, bad };

  const d = net ? NET_DEFAULTS[net] : MODEL_DEFAULTS;
  const given = (f: string) => value.get(f);
  const budget = given('epochs') === undefined && given('steps') === undefined ? d.budget : {};
  const expected: Partial<TrainArgs> = {
    net,
    epochs: (given('epochs') ?? ('epochs' in budget ? budget.epochs : undefined)) as number | undefined,
    steps: (given('steps') ?? ('steps' in budget ? budget.steps : undefined)) as number | undefined,
    batch: (given('batch') ?? d.batch) as number,
    lr: (given('lr') ?? d.lr) as number,
    optimizer: (given('optimizer') ?? d.optimizer) as TrainArgs['optimizer'],
    hidden: (given('hidden') ?? d.hidden) as number | undefined,
    layers: (given('layers') ?? d.layers) as number | undefined,
    cell: (given('cell') ?? d.cell) as TrainArgs['cell'],
    keepProb: (given('keep-prob') ?? d.keepProb) as number | undefined,
    seed: (given('seed') ?? DEFAULT_SEED) as number,
    val: (given('val') ?? DEFAULT_VAL) as number,
  };
  for (const f of ['data', 'save', 'load', 'trace', 'plots'] as const) expected[f] = given(f) as string | undefined;
  for (const f of ['eval', 'profile', 'json', 'help'] as const) expected[f] = value.has(f);
  for (const [flag, field] of Object.entries(CONTROL_FIELD)) (expected as Record<string, unknown>)[field] = given(flag);
  return { argv, bad, expected };
}

/** What a successful parse must satisfy (the documented ranges, the per-net defaults, knob applicability). */
function checkParsed(a: TrainArgs, argv: string[]): void {
  const ctx = JSON.stringify(argv);
  if (a.net !== undefined) expect(NETS, ctx).to.include(a.net);
  else expect(a.load, `${ctx}: no --net only with --load`).to.be.a('string');
  const d = a.net ? NET_DEFAULTS[a.net] : MODEL_DEFAULTS;
  expect((a.epochs === undefined) !== (a.steps === undefined), `${ctx}: exactly one of epochs/steps`).to.equal(true);
  for (const v of [a.epochs, a.steps, a.batch]) if (v !== undefined) expect(Number.isSafeInteger(v) && v >= 1, `${ctx}: ${v} ≥ 1`).to.equal(true);
  expect(a.lr > 0 && Number.isFinite(a.lr), `${ctx}: lr ${a.lr}`).to.equal(true);
  expect(Number.isSafeInteger(a.val) && a.val >= 0, `${ctx}: val`).to.equal(true);
  expect(Number.isSafeInteger(a.seed) && a.seed >= 0 && a.seed <= 0xffffffff, `${ctx}: seed`).to.equal(true);
  expect(OPTIMIZERS, ctx).to.include(a.optimizer);
  for (const k of ['hidden', 'layers', 'cell', 'keepProb'] as const) {
    expect(a[k] === undefined, `${ctx}: ${k} only for nets that have it`).to.equal(d[k] === undefined);
  }
  if (a.hidden !== undefined) expect(Number.isSafeInteger(a.hidden) && a.hidden >= 1, ctx).to.equal(true);
  if (a.layers !== undefined) expect(Number.isSafeInteger(a.layers) && a.layers >= 1, ctx).to.equal(true);
  if (a.keepProb !== undefined) expect(a.keepProb > 0 && a.keepProb <= 1, `${ctx}: keepProb ${a.keepProb}`).to.equal(true);
  if (a.eval) expect(a.load, `${ctx}: --eval needs --load`).to.be.a('string');
  for (const k of ['data', 'save', 'load', 'trace', 'plots'] as const) if (a[k] !== undefined) expect(a[k]!.length, ctx).to.be.greaterThan(0);
}

// ------------------------------------------------------------------ graphs

const fake = {} as GPUBuffer;

/** A dim: mostly small, sometimes 1, rarely larger. */
const dim = (r: Rand): number => (r() < 0.15 ? 1 : r() < 0.9 ? int(r, 2, 12) : int(r, 13, 64));

/** A shape mistake injected into a graph: the op that must reject it, as its error names it ("fc0 (dense)"). */
interface Mistake { op: string; what: string }

/**
 * Builds a random graph of one family, recording every mistake it injects before building the op
 * that must reject it; each op built has its output shape checked against its formula.
 */
function randomGraph(r: Rand, n: number, mistakes: Mistake[]): { g: Graph; loss: Tensor } {
  /** Usually `v`; with probability p a different dim (≥ 1), recorded as a mistake of `op`. */
  const maybeWrong = (v: number, p: number, op: string, what: string): number => {
    if (r() >= p) return v;
    const w = pick(r, v > 1 ? [v - 1, v + 1, v + 2, v + 3] : [v + 1, v + 2, v + 3]);
    mistakes.push({ op, what: `${what} ${w} instead of ${v}` });
    return w;
  };
  /** A VALID window larger than the input: the op must reject it. */
  const checkFit = (op: string, padding: string, k: number, size: number, what: string) => {
    if (padding === 'VALID' && k > size) mistakes.push({ op, what: `${what}: VALID window ${k} over ${size}` });
  };
  const g = new Graph(`fuzz ${n}`);
  const family = pick(r, ['dense', 'conv', 'recurrent', 'mixed'] as const);
  const B = dim(r);
  let p = 0;
  const P = (shape: number[]) => g.param(`p${p++}`, shape, fake);
  let h: Tensor;
  if (family === 'dense' || family === 'mixed') {
    let F = dim(r);
    h = g.input('x', [B, F]);
    for (let l = int(r, 1, 3); l > 0; l--) {
      const out = dim(r);
      const op = `fc${l} (dense)`;
      const w = P([maybeWrong(F, 0.06, op, 'w rows'), out]);
      const b = r() < 0.8 ? P([maybeWrong(out, 0.06, op, 'bias')]) : undefined;
      h = g.dense(h, w, b, pick(r, ['none', 'relu', 'sigmoid', 'tanh'] as const), `fc${l}`);
      expect(h.shape).to.deep.equal([B, out]);
      if (r() < 0.3) {
        const keep = r() < 0.05 ? pick(r, [0, -0.5, 1.5, NaN]) : pick(r, [0.5, 0.9, 1, 0.01]);
        if (!(keep > 0 && keep <= 1)) mistakes.push({ op: `drop${l} (dropout)`, what: `keep probability ${keep}` });
        h = g.dropout(h, keep, int(r, 0, 99), `drop${l}`);
      }
      F = out;
    }
    if (family === 'mixed' && r() < 0.7) {
      // view as an image [B, H, F/H, 1] and convolve it
      const H = pick(r, [1, 2, 3, 4].filter((d) => F % d === 0));
      h = g.reshape(h, [B, H, maybeWrong(F / H, 0.1, 'image (reshape)', 'width'), 1], 'image');
      expect(h.size).to.equal(B * F);
      const [kh, kw] = [int(r, 1, 3), int(r, 1, 3)];
      const padding = pick(r, ['SAME', 'VALID'] as const);
      checkFit('conv (conv2d)', padding, kh, H, 'height');
      checkFit('conv (conv2d)', padding, kw, F / H, 'width');
      h = g.conv2d(h, P([kh, kw, maybeWrong(1, 0.06, 'conv (conv2d)', 'filter in_channels'), dim(r)]), undefined, { padding }, 'conv');
      h = g.reshape(h, [B, h.size / B], 'flat');
    }
  } else if (family === 'conv') {
    const H = dim(r), W = dim(r);
    let C = int(r, 1, 4);
    h = g.input('x', [B, H, W, C]);
    for (let l = int(r, 1, 3); l > 0; l--) {
      const kh = int(r, 1, 5), kw = int(r, 1, 5), s = int(r, 1, 3), O = int(r, 1, 8);
      const padding = pick(r, ['SAME', 'VALID'] as const);
      const [ih, iw] = [h.shape[1], h.shape[2]];
      const op = `conv${l} (conv2d)`;
      checkFit(op, padding, kh, ih, 'height');
      checkFit(op, padding, kw, iw, 'width');
      const filter = P([kh, kw, maybeWrong(C, 0.06, op, 'filter in_channels'), O]);
      const bias = r() < 0.7 ? P([maybeWrong(O, 0.06, op, 'bias')]) : undefined;
      h = g.conv2d(h, filter, bias, { stride: s, padding, activation: pick(r, ['none', 'relu'] as const) }, `conv${l}`);
      const out = (n: number, k: number) => (padding === 'SAME' ? Math.ceil(n / s) : Math.ceil((n - k + 1) / s));
      expect(h.shape).to.deep.equal([B, out(ih, kh), out(iw, kw), O]);
      C = O;
      if (r() < 0.5) {
        const size = int(r, 1, 3), stride = int(r, 1, 3);
        const pp = pick(r, ['SAME', 'VALID'] as const);
        const [ph, pw] = [h.shape[1], h.shape[2]];
        const max = r() < 0.5;
        const pop = `pool${l} (${max ? 'maxpool' : 'avgpool'})`;
        checkFit(pop, pp, size, ph, 'height');
        checkFit(pop, pp, size, pw, 'width');
        h = max ? g.maxPool(h, { size, stride, padding: pp }, `pool${l}`) : g.avgPool(h, { size, stride, padding: pp }, `pool${l}`);
        const po = (n: number) => (pp === 'SAME' ? Math.ceil(n / stride) : Math.ceil((n - size + 1) / stride));
        expect(h.shape).to.deep.equal([B, po(ph), po(pw), C]);
      }
    }
    h = g.reshape(h, [B, maybeWrong(h.size / B, 0.05, 'flat (reshape)', 'features')], 'flat');
  } else {
    const T = dim(r), I = dim(r);
    const cell = pick(r, ['lstm', 'gru', 'rnn'] as const);
    const G = { lstm: 4, gru: 3, rnn: 1 }[cell];
    const layers = int(r, 1, 3);
    const hidden = Array.from({ length: layers }, () => dim(r));
    const x = g.input('x', [T, B, I]);
    const op = `${cell} (recurrent)`; // (the op is named after its cell)
    let inSize = I;
    const weights = hidden.map((Hl, l) => {
      const w = P([maybeWrong(inSize + Hl, 0.03, op, `layer ${l} w rows`), maybeWrong(G * Hl, 0.03, op, `layer ${l} w cols`)]);
      const b = P([maybeWrong(G * Hl, 0.03, op, `layer ${l} b`)]);
      inSize = Hl;
      return { w, b };
    });
    if (r() < 0.04) {
      weights.pop();
      mistakes.push({ op, what: `${layers - 1} weight pairs for ${layers} layers` });
    }
    const output = pick(r, ['last', 'all'] as const);
    h = g.recurrent(x, weights, { cell, hidden, output, keepProb: pick(r, [1, 0.8]), seed: 1 }, cell);
    expect(h.shape).to.deep.equal(output === 'last' ? [B, hidden[layers - 1]] : [T, B, hidden[layers - 1]]);
    if (output === 'all') h = g.reshape(h, [T * B, hidden[layers - 1]], 'flat');
  }
  const classes = int(r, 2, 10);
  const logits = g.dense(h, P([h.shape[h.shape.length - 1], classes]), P([classes]), 'none', 'logits');
  const labels = g.input('labels', [maybeWrong(logits.shape[0], 0.05, 'xent (softmax cross-entropy)', 'labels')], 'u32');
  const { loss } = g.softmaxCrossEntropy(logits, labels, 'xent');
  g.accuracy(logits, labels);
  return { g, loss };
}

/**
 * The plan's invariants, with liveness derived here from the schedule: every planned tensor has a
 * slot big enough, and tensors sharing a slot are never both alive at one node (views keep their root alive).
 */
function checkPlanDisjoint(plan: Plan, schedule: readonly Node[], what: string): void {
  const life = new Map<Tensor, [number, number]>();
  schedule.forEach((node, i) => {
    for (const t of [...node.inputs, ...node.outputs]) {
      if (!isPlanned(t.root)) continue;
      const l = life.get(t.root);
      if (l) l[1] = i;
      else life.set(t.root, [i, i]);
    }
  });
  for (const [t] of life) {
    const s = plan.slotOf.get(t);
    expect(s, `${what}: ${t} has a slot`).to.not.equal(undefined);
    expect(s!.bytes, `${what}: slot ${s!.index} holds ${t}`).to.be.at.least(t.bytes);
  }
  for (const slot of plan.slots) {
    const spans = slot.tensors.map((t) => ({ t, span: life.get(t)! })).sort((a, b) => a.span[0] - b.span[0]);
    for (let k = 1; k < spans.length; k++) {
      const prev = spans[k - 1], cur = spans[k];
      expect(prev.span[1], `${what}: slot ${slot.index} holds ${prev.t} (nodes ${prev.span}) and ${cur.t} (nodes ${cur.span}) at once`).to.be.lessThan(cur.span[0]);
    }
  }
}

// ------------------------------------------------------------------ tests

describe('fuzz: a case with no bad knob succeeds; one with a bad knob fails with a documented one-line error naming it', function () {
  this.timeout(60_000);

  it('parseArgs: random command lines, valid ones, ones with each documented mistake planted, and ones with anything', () => {
    const r = rng(20240808);
    const tally = new Tally('parseArgs');
    for (let n = 0; n < 3 * PLANTED.length; n++) {
      const mode = n % 3;
      const c = judgeCase(mode === 0 ? validKnobs(r) : mode === 1 ? validKnobs(r, PLANTED[(n - 1) / 3]) : randomKnobs(r));
      const what = `case ${n} ${JSON.stringify(c.argv)}`;
      if (mode === 1) expect(c.bad.length, `${what}: a planted mistake is bad by the documented rules`).to.be.greaterThan(0);
      let parsed: TrainArgs | undefined;
      const out = classify(what, () => { parsed = parseArgs(c.argv); });
      if (!c.bad.length) {
        tally.valid++;
        if (out !== 'ok') {
          tally.problems.push(`${what}: valid, but ${out.message}`);
          continue;
        }
        checkParsed(parsed!, c.argv);
        const got = Object.fromEntries(Object.keys(c.expected!).map((k) => [k, parsed![k as keyof TrainArgs]]));
        expect(got, `${what}: parsed`).to.deep.equal(c.expected);
      } else {
        tally.bad++;
        const whys = c.bad.map((b) => b!.why).join('; ');
        if (out === 'ok') tally.problems.push(`${what}: accepted, though bad (${whys})`);
        else if (!(out instanceof ArgsError)) tally.problems.push(`${what}: ${out.name}, not ArgsError`);
        else if (!c.bad.some((b) => b!.names.some((name) => out.message.includes(name)))) {
          tally.problems.push(`${what}: "${out.message}" names none of the bad knobs (${whys})`);
        }
      }
    }
    tally.report();
  });

  it('Graph building, autodiff and planning: 400 random graphs', () => {
    const r = rng(7781);
    const tally = new Tally('graphs');
    for (let n = 0; n < 400; n++) {
      const mistakes: Mistake[] = [];
      let built: { g: Graph; loss: Tensor } | undefined;
      const what = `graph case ${n}`;
      // the generator stops at the op that rejects a mistake: later ops (and mistakes) are never made
      const out = classify(what, () => { built = randomGraph(r, n, mistakes); });
      if (!mistakes.length) {
        tally.valid++;
        if (out !== 'ok') {
          tally.problems.push(`${what}: valid, but ${out.message}`);
          continue;
        }
        const { g, loss } = built!;
        const grads = buildBackward(g, loss);
        for (const [param, grad] of grads) expect(grad.shape, `${what}: d${param}`).to.deep.equal(param.shape);
        expect(grads.size, `${what}: every param has a gradient`).to.equal(g.tensors.filter((t) => t.role === 'param').length);
        checkPlanDisjoint(planBuffers(g.nodes, [loss]), g.nodes, what);
      } else {
        tally.bad++;
        const first = mistakes[0];
        const whys = mistakes.map((m) => `${m.op}: ${m.what}`).join('; ');
        if (out === 'ok') tally.problems.push(`${what}: built, though it has mistakes (${whys})`);
        else if (!(out instanceof GraphError)) tally.problems.push(`${what}: ${out.name}, not GraphError`);
        // ops are built in order, so the first op with a mistake is the one that must reject it
        else if (!out.message.startsWith(`${first.op}:`)) tally.problems.push(`${what}: "${out.message}" does not name ${first.op} (${whys})`);
      }
    }
    tally.report();
  });

  it('Graph: bad dims given to a tensor (0, negative, fractional, NaN) are a GraphError naming it, good ones build', () => {
    const r = rng(99);
    const tally = new Tally('tensor dims');
    const badDims = [0, -1, 1.5, NaN, -0, Infinity];
    for (let n = 0; n < 40; n++) {
      const g = new Graph('dims');
      const shape = [dim(r), dim(r)];
      const bad = n % 2 === 1;
      if (bad) shape[int(r, 0, 1)] = pick(r, badDims);
      const what = `dims ${JSON.stringify(shape)}`;
      let y: Tensor | undefined;
      const out = classify(what, () => {
        const x = g.input('x', shape);
        y = g.dense(x, g.param('w', [shape[1], 3], fake), undefined);
      });
      if (!bad) {
        tally.valid++;
        if (out !== 'ok') tally.problems.push(`${what}: valid, but ${out.message}`);
        else expect(y!.shape, what).to.deep.equal([shape[0], 3]);
      } else {
        tally.bad++;
        if (out === 'ok') tally.problems.push(`${what}: accepted`);
        else if (!(out instanceof GraphError) || !out.message.startsWith('tensor x:')) tally.problems.push(`${what}: ${out.name} "${out.message}" does not name tensor x`);
      }
    }
    tally.report();
  });

  describe('on the GPU: random tiny nets compile and run one step, or fail naming the bad option', () => {
    let ctx: GpuContext;
    before(async () => { ctx = await testContext(); });

    it('random Trainer configurations: 10 valid ones, and one with each bad value of each option', async function () {
      this.timeout(240_000); // 10 compiles on a software GPU (a bad option fails before compiling)
      const r = rng(4242);
      const images = Float32Array.from({ length: 16 * 784 }, (_, i) => ((i * 37) % 256) / 255);
      const labels = Uint8Array.from({ length: 16 }, (_, i) => i % 10);
      const tally = new Tally('Trainer');
      ctx.dummyBuffer(); // the placeholder bindings, made once per context by the first compile that needs them: not leaks
      ctx.dummyBuffer(1);
      const before = ctx.liveBuffers;
      const cases = [...Array.from({ length: 10 }, () => undefined), ...BAD_OPTIONS.flatMap((b) => b.values.map((value) => ({ ...b, value })))];
      for (let n = 0; n < cases.length; n++) {
        // A bad option goes on a net that has it, and the case must then fail naming it.
        const bad = cases[n];
        const net = bad ? pick(r, NETS.filter(bad.applies)) : NETS[n % NETS.length];
        const opts: TrainerOptions = {
          net, seed: int(r, 0, 1000), batch: int(r, 1, 6),
          optimizer: { kind: pick(r, ['sgd', 'adam'] as const), lr: pick(r, [1e-3, 0.05]) },
        };
        const d = NET_DEFAULTS[net];
        if (d.hidden !== undefined) opts.hidden = int(r, 1, net === 'cnn' ? 8 : 12);
        if (d.layers !== undefined) opts.layers = int(r, 1, 2);
        if (d.cell !== undefined) opts.cell = pick(r, CELLS);
        if (d.keepProb !== undefined) opts.keepProb = pick(r, [1, 0.5, 0.9]);
        if (bad) bad.apply(opts, bad.value);
        const what = `trainer case ${n} ${JSON.stringify(opts)}`;
        let trainer: Trainer | undefined;
        try {
          trainer = await Trainer.create(ctx, opts);
          const idx = Uint32Array.from({ length: opts.batch }, (_, i) => i % 16);
          trainer.writeBatch({ count: 16, images, labels }, idx);
          const m = await trainer.step(true);
          if (bad) tally.problems.push(`${what}: accepted, though ${bad.option} is bad`);
          else {
            expect(Number.isFinite(m.loss) && m.loss > 0, `${what}: loss ${m.loss}`).to.equal(true);
            expect(m.accuracy).to.be.within(0, 1);
          }
        } catch (e) {
          if (e instanceof chaiAssertion) throw e;
          const err = documented(what, e);
          if (!bad) tally.problems.push(`${what}: valid, but ${err.message}`);
          else if (!bad.named.test(err.message)) tally.problems.push(`${what}: "${err.message}" does not name ${bad.option}`);
        } finally {
          trainer?.destroy();
        }
        if (bad) tally.bad++;
        else tally.valid++;
        expect(ctx.liveBuffers, `${what}: buffers released`).to.equal(before);
      }
      tally.report();
    });
  });
});

/** Bad Trainer options: which nets have them, how to spoil one, and how its error must name it. */
const BAD_OPTIONS: { option: string; named: RegExp; values: number[]; applies: (net: NetName) => boolean; apply: (o: TrainerOptions, v: number) => void }[] = [
  { option: 'batch', named: /batch/, values: [0, -2, 1.5], applies: () => true, apply: (o, v) => { o.batch = v; } },
  { option: 'lr', named: /learning rate/, values: [0, -1, Infinity, NaN], applies: () => true, apply: (o, v) => { o.optimizer = { ...o.optimizer, lr: v }; } },
  { option: 'hidden', named: /hidden/, values: [0, -4, 2.5], applies: (n) => NET_DEFAULTS[n].hidden !== undefined, apply: (o, v) => { o.hidden = v; } },
  { option: 'layers', named: /layers/, values: [0, -1, 1.5], applies: (n) => NET_DEFAULTS[n].layers !== undefined, apply: (o, v) => { o.layers = v; } },
  { option: 'keepProb', named: /keepProb/, values: [0, 1.0001, -0.5, NaN], applies: (n) => NET_DEFAULTS[n].keepProb !== undefined, apply: (o, v) => { o.keepProb = v; } },
];

// chai's AssertionError, so that a failed check inside a case is not mistaken for the case's error.
const chaiAssertion = (() => {
  try {
    expect(1).to.equal(2);
  } catch (e) {
    return (e as Error).constructor as new (...a: unknown[]) => Error;
  }
  throw new Error('unreachable');
})();
