// `--model FILE`: a model from our JSON spec (docs/MODEL-SPEC.md) or a Keras `model.to_json()` file,
// its optional training defaults, and the checks of a model against the data. Every problem is a
// ModelFileError of one line naming the file (and the layer, for the spec's own errors); exit 2.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ModelSpecError } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import { modelFromKeras, modelFromSpec } from '../nn/spec.js';
import { exampleSize, formatShape } from '../data/dataset.js';
import type { IdxDataset } from '../data/mnist.js';
import { OPTIMIZERS, type OptimizerName } from './args.js';
import { CONTROL_FIELDS, SCHEDULES, outOfRange, type ScheduleKind, type TrainingControl } from './train-control.js';

/** A model file that cannot be read or used. One line: the file, the layer if any, the fix. */
export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/**
 * The optional top-level "training" object of a model file: defaults that flags override. The
 * training-control settings are its snake_case fields (weight_decay, schedule, decay_steps,
 * decay_rate, min_lr, warmup, clip_norm, label_smoothing, early_stop).
 */
export interface TrainingDefaults extends TrainingControl {
  epochs?: number;
  steps?: number;
  batch?: number;
  lr?: number;
  optimizer?: OptimizerName;
}

export interface ModelFile {
  model: Model;
  /** 'spec': our JSON spec; 'keras': a Keras model.to_json(). */
  format: 'spec' | 'keras';
  training: TrainingDefaults;
}

/** Line and column (1-based) of character `pos` of `text`. */
function lineColumn(text: string, pos: number): { line: number; column: number } {
  const before = text.slice(0, pos).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/**
 * Where JSON text first goes wrong: the offset of the first character a JSON parser cannot accept
 * (the text's length when it ends too early). For messages: JSON.parse does not always say where.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const bad = (): never => { throw i; };
  const lit = (w: string) => { if (text.startsWith(w, i)) i += w.length; else bad(); };
  const str = () => {
    if (text[i] !== '"') bad();
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) bad();
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) bad(); i += 4; } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) bad();
      }
      i++;
    }
    if (i >= text.length) bad();
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) { ws(); str(); ws(); if (text[i] !== ':') bad(); i++; value(); ws(); if (text[i] === ',') { i++; continue; } if (text[i] === '}') { i++; return; } bad(); }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (;;) { value(); ws(); if (text[i] === ',') { i++; continue; } if (text[i] === ']') { i++; return; } bad(); }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) bad();
      i += m![0].length;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) bad();
  } catch (at) {
    if (typeof at === 'number') return Math.min(at, text.length);
    throw at;
  }
  return text.length;
}

/** Parses JSON text; a syntax error names the file and the line and column where it goes wrong. */
export function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    const { line, column } = lineColumn(text, jsonErrorOffset(text));
    return fail(`${file} is not valid JSON at line ${line}, column ${column} (${msg}): fix the file (a model spec or a Keras model.to_json())`);
  }
}

function fail(message: string): never {
  throw new ModelFileError(message);
}

const TRAINING_KEYS = ['epochs', 'steps', 'batch', 'lr', 'optimizer', ...CONTROL_FIELDS.map((f) => f.field)] as const;

/** The "training" object of a model file, checked field by field. */
export function readTraining(raw: unknown, file: string): TrainingDefaults {
  if (raw === undefined) return {};
  const where = `${file}: "training"`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${where} must be an object like {"epochs": 3, "batch": 64, "lr": 0.001, "optimizer": "adam"}`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(TRAINING_KEYS as readonly string[]).includes(k)) fail(`${where} has an unknown field "${k}": its fields are ${TRAINING_KEYS.join(', ')}`);
  }
  const out: TrainingDefaults = {};
  for (const k of ['epochs', 'steps', 'batch'] as const) {
    if (o[k] === undefined) continue;
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 1) fail(`${where}.${k} must be a positive integer, got ${JSON.stringify(o[k])}`);
    out[k] = o[k] as number;
  }
  if (out.epochs !== undefined && out.steps !== undefined) fail(`${where} gives both epochs and steps: give one of them`);
  if (o.lr !== undefined) {
    if (typeof o.lr !== 'number' || !(o.lr > 0) || !Number.isFinite(o.lr)) fail(`${where}.lr must be a number greater than 0, got ${JSON.stringify(o.lr)}`);
    out.lr = o.lr;
  }
  if (o.optimizer !== undefined) {
    if (!OPTIMIZERS.includes(o.optimizer as OptimizerName)) fail(`${where}.optimizer ${JSON.stringify(o.optimizer)} is not one of ${OPTIMIZERS.join(', ')}: give "optimizer": "${OPTIMIZERS.join('" or "')}"`);
    out.optimizer = o.optimizer as OptimizerName;
  }
  for (const f of CONTROL_FIELDS) {
    const v = o[f.field];
    if (v === undefined) continue;
    if (f.kind === 'schedule') {
      if (!(SCHEDULES as readonly unknown[]).includes(v)) fail(`${where}.${f.field} ${JSON.stringify(v)} is not one of ${SCHEDULES.join(', ')}: give "${f.field}": "${SCHEDULES.join('" or "')}"`);
      out.schedule = v as ScheduleKind;
      continue;
    }
    const whole = f.kind === 'int';
    if (typeof v !== 'number' || !Number.isFinite(v) || (whole && (!Number.isSafeInteger(v) || v > 0xffffffff))) fail(`${where}.${f.field} must be ${whole ? 'a whole number' : 'a number'}, got ${JSON.stringify(v)}`);
    const why = outOfRange(f, v as number);
    if (why) fail(`${where}.${f.field} ${why}, got ${JSON.stringify(v)}`);
    (out as Record<string, unknown>)[f.key] = v;
  }
  return out;
}

/**
 * The model described by the JSON text `text` of `file`: our spec when it has "layers" and
 * "input_shape" at the top, a Keras model.to_json() when it has "class_name" and "config".
 */
export function modelFromText(text: string, file: string): ModelFile {
  const json = parseJsonFile(text, file);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail(`${file} is not a model: give a JSON object, a model spec with "input_shape" and "layers" (docs/MODEL-SPEC.md) or a Keras model.to_json()`);
  }
  const o = json as Record<string, unknown>;
  const isKeras = typeof o.class_name === 'string' && 'config' in o;
  const isSpec = 'layers' in o || 'input_shape' in o;
  if (!isKeras && !isSpec) {
    fail(`${file} is neither a model spec (no "input_shape" and "layers") nor a Keras model.to_json() (no "class_name" and "config"): see docs/MODEL-SPEC.md`);
  }
  const training = readTraining(o.training, file);
  try {
    if (isKeras) return { model: modelFromKeras(o), format: 'keras', training };
    const { training: _, ...spec } = o;
    return { model: modelFromSpec(spec), format: 'spec', training };
  } catch (e) {
    if (e instanceof ModelSpecError) fail(`${file}: ${e.message}`);
    throw e;
  }
}

/** Reads `file` (see modelFromText). Throws ModelFileError. */
export function readModelFile(file: string): ModelFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') fail(`model file ${file} does not exist: check the --model path`);
    if (err.code === 'EISDIR') fail(`model file ${file} is a folder: give --model a .json file`);
    fail(`cannot read model file ${file}: ${err.message.split('\n')[0]}`);
  }
  return modelFromText(text, file);
}

/** The model's output layer, as spec errors name it: `layer 4 "out" (Dense)`. */
function outputLayer(model: Model): string {
  return `layer ${model.layers.indexOf(model.outputLayer)} ${model.outputLayer.describe()}`;
}

/**
 * Throws ModelFileError unless the data fits the model: each example has as many values as the
 * model's input, and every label is one of the model's classes. `what` names the model (its file).
 */
export function checkModelData(model: Model, data: Pick<IdxDataset, 'shape' | 'classes' | 'files'>, what: string): void {
  const size = exampleSize(data.shape);
  if (size !== model.inputSize) {
    fail(`${what}: the input ${formatShape(model.inputShape)} takes ${model.inputSize} values per example but ${data.files.trainImages} has examples of shape ${formatShape(data.shape)} (${size} values): set the model's input shape to ${formatShape(data.shape)}`);
  }
  if (data.classes > model.classes) {
    fail(`${what}: ${outputLayer(model)} gives ${model.classes} class scores but ${data.files.trainLabels} and ${basename(data.files.testLabels)} use ${data.classes} classes (labels 0-${data.classes - 1}): give the last layer ${data.classes} units`);
  }
}
