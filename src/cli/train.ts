// `node dist/train.js --net NAME [flags]`: trains one of the tutorials' MNIST nets on the GPU.
import { writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ArgsError, parseArgs, helpText, hyperParameters, SHAPE_KEYS, NETS, OPTIMIZERS, CELLS, type TrainArgs, type NetName, type OptimizerName, type CellName } from './args.js';
import { EpochProgress, formatDuration } from './progress.js';
import { writePlots, type Curves, type EpochStats, type Misclassified } from './plots.js';
import { checkExportTarget, writeOnnxFile, OnnxExportError } from './export-onnx.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint, checkShapes, checkMetadata, type Checkpoint } from './checkpoint.js';
import { DataError, NUM_CLASSES, loadMnist, checkImageSize, exampleSize, type Mnist } from '../data/mnist.js';
import { ModelFileError, readModelFile, checkModelData, type TrainingDefaults } from './model-file.js';
import { checkIdsData } from './ids-data.js';
import { ModelSpecError } from '../nn/layers.js';
import type { Model } from '../nn/model.js';
import { modelFromSpec, modelToSpec } from '../nn/spec.js';
import { builtinModel, NET_DEFAULTS } from '../nn/models/builtin.js';
import { createNodeContext } from '../gpu/node.js';
import { nodeMatmulTuner } from './tuning.js';
import { GpuError, type GpuContext } from '../gpu/context.js';
import { GraphError } from '../graph/graph.js';
import { Trainer } from '../nn/trainer.js';
import { trainLoop } from '../nn/loop.js';
import { chromeTrace } from '../gpu/trace.js';
import { StateError } from '../nn/state.js';
import { openResume, applyRecordedFlags, checkResume, RunKeeper, type ResumePoint } from './resume.js';
import { CONTROL_FIELDS, resolveControl } from './train-control.js';
import { scheduledLr } from '../graph/train-control.js';
import { EarlyStopping } from '../nn/early-stop.js';
import { OutputPathError, checkOutputPaths, isFileError, outputPaths } from './output-paths.js';
import { RunSizeError, checkRunSize } from './run-size.js';
import { MetricsLog, ReadRows } from './metrics-log.js';

/** How often (in steps) loss and accuracy are read back from the GPU. */
const READ_EVERY = 10;

class TrainingStopped extends Error {}

/**
 * Test hook (not a user flag): WEBGPU_TRAIN_TEST_LOSE_DEVICE_AT_STEP=N destroys the device after
 * training step N is submitted, to check that a lost device ends the run with one line, not a hang.
 */
const LOSE_DEVICE_AT = Number(process.env.WEBGPU_TRAIN_TEST_LOSE_DEVICE_AT_STEP ?? NaN);

/** A suggested lower learning rate, in a readable form (1e-5, 0.0001, 100000). */
function lower(lr: number): string {
  return String(Number((lr / 10).toPrecision(3)));
}

const mb = (bytes: number) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(0)} KB`);

export async function main(argv: string[]): Promise<number> {
  let args: TrainArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof ArgsError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (args.help) {
    console.log(helpText());
    return 0;
  }
  const json = args.json;
  const log = (s: string) => { if (!json) console.log(s); };
  const emit = (o: object) => { if (json) console.log(JSON.stringify(o)); };

  // Everything that can be checked without the GPU is checked first: a mistake costs one line at once,
  // not after the device is made and the graph compiled (or after training, for --save).
  let data: Mnist;
  let ckpt: Checkpoint | undefined;
  let model: Model;
  let label: string; // the model in messages: the net's name or the model file
  let resumed: ResumePoint | undefined;
  let control: ReturnType<typeof resolveControl>;
  try {
    if (args.resume) {
      resumed = openResume(args.resume);
      applyRecordedFlags(resumed, args); // --resume FILE alone continues the run
    }
    checkOutputPaths(outputPaths(args)); // nothing made yet: each output's folder and name are checked
    if (args.load) ckpt = loadCheckpoint(args.load);
    if (args.model) {
      const file = readModelFile(args.model);
      model = file.model;
      applyDefaults(args, file.training);
      label = args.model;
    } else if (args.net) {
      model = builtinModel(args.net, { hidden: args.hidden, layers: args.layers, cell: args.cell, keepProb: args.keepProb });
      label = args.net;
    } else if (resumed) { // the model as recorded (a --model file may have changed or moved since)
      model = modelFromSpec(resumed.state.metadata.model_spec);
      label = resumed.modelFile ?? model.name;
    } else {
      // --load FILE alone: the checkpoint names its model (a built-in net, or the spec it was trained from).
      ({ model, label } = modelOfCheckpoint(args, ckpt!, args.load!));
    }
    if (resumed) applyRecordedFlags(resumed, args); // again: a model file's "training" gives way to the recorded flags
    if (args.net) {
      // The built-in nets take 28x28 images and have 10 outputs: a label past 9 is named with its file.
      data = loadMnist({ dir: args.data, validation: args.val, classes: NUM_CLASSES });
      checkImageSize(data, 28, 28, args.net);
    } else {
      data = loadMnist({ dir: args.data, validation: args.val });
      checkModelData(model, data, label);
      checkIdsData(model, data, label);
    }
    if (!args.eval && data.train.count < args.batch) {
      throw new DataError(`the training set has ${data.train.count} images, fewer than one batch of ${args.batch}: lower --batch or --val`);
    }
    if (args.load && ckpt) {
      if (args.net) checkMetadata(ckpt, hyperParameters(args), SHAPE_KEYS, args.load);
      checkShapes(ckpt, paramShapes(model), args.load);
    }
    control = resolveControl({ kind: args.optimizer, lr: args.lr }, args, {
      totalSteps: totalStepsOf(args, data),
      validation: data.validation.count, mse: model.loss === 'mean_squared_error', eval: args.eval,
      source: (k) => {
        const f = CONTROL_FIELDS.find((c) => c.key === k)!;
        return !args.given.has(f.flag) && args.model ? `${args.model}: "training".${f.field}` : `--${f.flag}`;
      },
    }, (m) => new ArgsError(m));
    if (control.earlyStop !== undefined && (args.checkpointEvery !== undefined || resumed)) {
      throw new ArgsError(`--early-stop does not combine with ${resumed ? '--resume' : '--checkpoint-every'} yet (a training-state file does not hold the best weights): leave one of them out`);
    }
    if (resumed) checkResume(resumed, args, model, data, totalStepsOf(args, data));
    if (args.export) checkExportTarget(args.export, model);
  } catch (e) {
    if (e instanceof ArgsError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    if (e instanceof DataError || e instanceof CheckpointError || e instanceof ModelFileError || e instanceof OnnxExportError || e instanceof OutputPathError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    if (e instanceof ModelSpecError) {
      console.error(`error: ${args.load ?? 'model'}: ${e.message}`);
      return 2;
    }
    throw e;
  }

  let ctx: GpuContext | undefined;
  let trainer: Trainer | undefined;
  let metricsLog: MetricsLog | undefined;
  let saved = false;
  try {
    ctx = await createNodeContext();
    checkRunSize(args, model, label, ctx.limits); // before any buffer is made
    const summary = model.summary();
    log(summary);
    emit({ event: 'model', name: model.name, source: args.model ? 'model' : args.net ? 'net' : 'checkpoint', params: model.paramCount, summary });
    log(`adapter: ${ctx.adapterDescription}`);
    const t0 = performance.now();
    // Tuning picks among tiles that compute the same sums in the same order: the run's numbers do not depend on it.
    const tuner = nodeMatmulTuner(ctx, args.tune, log);
    trainer = await Trainer.create(ctx, { model, seed: args.seed, batch: args.batch, optimizer: control.optimizer, labelSmoothing: control.labelSmoothing, tuning: tuner ?? false });
    const g = trainer.graph;
    log(`${args.net ? `net ${args.net}` : `model ${model.name}`}: ${g.dispatchCount} dispatches per step in 1 submit, ${mb(g.plan.plannedBytes)} planned for activations and gradients (${mb(g.plan.naiveBytes)} without sharing), compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    if (args.load && ckpt) {
      checkShapes(ckpt, trainer.store.shapes(), args.load); // checked before the GPU too; the store is the truth
      for (const [name, t] of Object.entries(ckpt.tensors)) trainer.store.write(name, t.data);
      log(`loaded ${args.load}`);
    }
    const keeper = args.eval ? undefined : new RunKeeper(args, argv, model, data, Math.floor(data.train.count / args.batch), resumed, log);
    if (resumed) {
      trainer.loadState(resumed.state);
      log(`resumed ${resumed.file} at step ${resumed.loopStep}`);
    }

    // Each read and epoch of the run (a resumed run starts with the epochs recorded in its state).
    const history: Curves = { reads: [], epochs: keeper?.history ?? [] };
    if (args.log) metricsLog = new MetricsLog(args.log);
    // the learning rate of a read's last step (1-based), as the GPU's schedule computes it
    const { lr, schedule } = control.optimizer;
    const rows = metricsLog && new ReadRows(metricsLog, trainer.batch, (step) => (schedule ? scheduledLr(lr, schedule, step - 1) : lr));
    let best: BestWeights | undefined;
    if (keeper) {
      const run = await train(args, label, data, trainer, history, log, emit, keeper, control.earlyStop, rows);
      if (run.exitCode !== undefined) return run.exitCode;
      best = run.best;
    }
    if (best) {
      // Early stopping keeps the best validation weights (Keras restore_best_weights): test and --save use them.
      for (const [name, t] of Object.entries(best.params)) trainer.store.write(name, t.data);
      log(`early stopping: kept the weights of epoch ${best.epoch} (the best validation loss, ${best.loss.toFixed(4)})`);
      emit({ event: 'best', epoch: best.epoch, valLoss: best.loss });
    }
    // The checkpoint first: it is worth the most, and nothing after it can lose it (a state file, with
    // --checkpoint-every or --resume, was written at the end of train()).
    if (args.save && !args.eval && !keeper?.stateMode) {
      const params = await trainer.store.read();
      saveCheckpoint(args.save, params, { ...hyperParameters(args), model_spec: JSON.stringify(modelToSpec(model)) });
      log(best ? `saved ${args.save}: the best validation checkpoint (epoch ${best.epoch}, validation loss ${best.loss.toFixed(4)})` : `saved ${args.save}`);
      if (best) emit({ event: 'saved', file: args.save, epoch: best.epoch, valLoss: best.loss });
      saved = true;
    }
    if (args.export) {
      const n = await writeOnnxFile(args.export, trainer, model.classes);
      log(`exported ${args.export} (ONNX, ${(n / 1e6).toFixed(2)} MB)`);
      emit({ event: 'export', file: args.export, bytes: n });
    }

    const test = await trainer.evaluate(data.test);
    rows?.evaluation('test', undefined, test);
    const wrong: Misclassified[] = [];
    for (let i = 0; i < data.test.count; i++) {
      if (test.predictions[i] !== data.test.labels[i]) wrong.push({ index: i, label: data.test.labels[i], predict: test.predictions[i] });
    }
    log(`test accuracy ${test.accuracy.toFixed(4)} (loss ${test.loss.toFixed(4)}), ${wrong.length} of ${data.test.count} misclassified`);
    for (const w of wrong.slice(0, 10)) log(`  index=${w.index} label=${w.label} predict=${w.predict}`);
    emit({ event: 'test', accuracy: test.accuracy, loss: test.loss, misclassified: wrong.length, first: wrong.slice(0, 25) });

    if (args.plots) {
      // The grid draws each example as a rows x cols grey image: only for examples of that many values.
      const grid = exampleSize(data.shape) === data.rows * data.cols ? { images: data.test.images, rows: data.rows, cols: data.cols, misclassified: wrong } : undefined;
      const files = await writePlots(args.plots, history, grid); // all of them: the grid shows the first 25 and says of how many
      log(`plots: ${files.join(', ')}`);
    }
    if (args.profile || args.trace) await profile(args, data, trainer, log, emit);
    return 0;
  } catch (e) {
    if (e instanceof TrainingStopped) {
      console.error(`error: ${e.message}`);
      return 3;
    }
    if (e instanceof RunSizeError && ctx) {
      // Refused right after the device was made: let lavapipe's threads finish starting before the
      // device is destroyed (destroying it at once sometimes made glibc print a futex error at exit).
      await ctx.wait(() => ctx!.device.queue.onSubmittedWorkDone());
    }
    if (e instanceof CheckpointError || e instanceof DataError || e instanceof OnnxExportError || e instanceof RunSizeError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    if (e instanceof StateError) {
      console.error(`error: cannot resume ${args.resume}: ${e.message}`);
      return 2;
    }
    if (isFileError(e)) {
      // An output that became unwritable during the run (the paths were checked before it): one line, and what was kept.
      const kept = saved ? `; the checkpoint ${args.save} was written before it` : '';
      console.error(`error: writing the run's outputs failed: ${oneLine(e.message)}${kept}`);
      return 1;
    }
    if (e instanceof GpuError || e instanceof GraphError) {
      const lost = ctx?.deviceLost !== undefined && !e.message.includes('device was lost') ? ` (the GPU device was lost: ${ctx.deviceLost})` : '';
      const saved = args.save && !args.eval ? `; ${args.save} was not written` : '';
      const hint = ctx?.deviceLost !== undefined ? `${saved}; run again (a lost device is a driver reset, a removed GPU or an out-of-memory)` : '';
      console.error(`error: ${oneLine(e.message)}${lost}${hint}`);
      return 1;
    }
    throw e;
  } finally {
    metricsLog?.close();
    trainer?.destroy();
    ctx?.destroy();
  }
}

/** Steps of the whole run: --steps, or --epochs whole passes. */
function totalStepsOf(args: TrainArgs, data: Mnist): number {
  return args.steps ?? (args.epochs ?? 1) * Math.floor(data.train.count / args.batch);
}

/** The parameters at the best validation loss, kept by early stopping. */
interface BestWeights {
  epoch: number;
  loss: number;
  params: Awaited<ReturnType<Trainer['store']['read']>>;
}

/**
 * Trains from the keeper's start step to the end. Returns the exit code when a signal stopped it
 * (the state then saved) and, with `earlyStop` N (stop after N epochs without a better validation
 * loss), the best weights.
 */
async function train(args: TrainArgs, label: string, data: Mnist, trainer: Trainer, history: Curves,
  log: (s: string) => void, emit: (o: object) => void, keeper: RunKeeper, earlyStop?: number, rows?: ReadRows): Promise<{ exitCode?: number; best?: BestWeights }> {
  const stopper = earlyStop !== undefined ? new EarlyStopping(earlyStop) : undefined;
  const early = new AbortController();
  let best: BestWeights | undefined;
  const B = trainer.batch;
  const perEpoch = Math.floor(data.train.count / B);
  if (perEpoch < 1) throw new DataError(`the training set has ${data.train.count} images, fewer than one batch of ${B}: lower --batch or --val`); // checked in main too
  const totalSteps = totalStepsOf(args, data);
  const epochs = Math.ceil(totalSteps / perEpoch);
  const first = keeper.startStep;
  const start = performance.now();
  let bar: EpochProgress | undefined;
  let barFrom = first % perEpoch; // steps of the bar's epoch done before this run (a resumed run starts mid-epoch)
  keeper.install(); // until the state is written: a second signal exits at once
  try {
    const result = await trainLoop(trainer, data.train, {
      steps: totalSteps - first, startStep: first, seed: args.seed, readEvery: READ_EVERY, readsInFlight: 1, signal: AbortSignal.any([keeper.signal, early.signal]),
      onEpochStart: (e) => {
        if (bar) barFrom = 0;
        bar = new EpochProgress({ stream: process.stderr, total: e.steps, batch: B, epoch: e.epoch + 1, epochs, tty: !args.json && process.stderr.isTTY === true });
      },
      onProgress: (p) => bar!.update(p.stepInEpoch - barFrom, p.read?.loss),
      // every read, including those the loop drains at an epoch's end without a progress call
      onRead: (r) => {
        history.reads.push({ step: r.step, epoch: r.epoch + 1, loss: r.loss, accuracy: r.accuracy });
        rows?.read(r);
      },
      onStep: (step) => {
        if (step === LOSE_DEVICE_AT) trainer.ctx.device.destroy();
        return keeper.afterStep(trainer, step, totalSteps);
      },
      onNonFinite: (r) => {
        const kept = args.save ? `; nothing was written to ${args.save}` : '';
        return new TrainingStopped(`the training loss became ${r.loss} by step ${r.step} (epoch ${r.epoch + 1}): the learning rate ${args.lr} is too high for ${label}; try --lr ${lower(args.lr)}${kept}`);
      },
      onEpochEnd: async (e) => {
        bar!.finish();
        const val = data.validation.count ? await trainer.evaluate(data.validation) : undefined;
        if (val) rows?.evaluation('validation', e.epoch, val);
        // The epoch's last step is read, so the last read marks where the epoch ended.
        const step = history.reads.at(-1)?.step ?? e.epoch * perEpoch + e.steps;
        const stats: EpochStats = { epoch: e.epoch + 1, step, trainLoss: e.loss, trainAcc: e.accuracy, valLoss: val?.loss, valAcc: val?.accuracy };
        keeper.noteEpoch(stats); // history.epochs is keeper.history
        log(`epoch ${e.epoch + 1}/${epochs}: train loss ${e.loss.toFixed(4)} acc ${e.accuracy.toFixed(4)}` +
          (val ? `, validation loss ${val.loss.toFixed(4)} acc ${val.accuracy.toFixed(4)}` : '') +
          `, ${e.steps} steps in ${formatDuration(e.seconds)} (${((e.steps * B) / e.seconds).toFixed(0)} examples/s)`);
        emit({ event: 'epoch', epoch: e.epoch + 1, epochs, steps: e.steps, trainLoss: e.loss, trainAccuracy: e.accuracy, valLoss: val?.loss, valAccuracy: val?.accuracy, seconds: e.seconds, examplesPerSecond: (e.steps * B) / e.seconds });
        if (stopper && val) {
          const verdict = stopper.update(val.loss);
          if (verdict === 'better') best = { epoch: e.epoch + 1, loss: val.loss, params: await trainer.store.read() };
          if (verdict === 'stop' && !early.signal.aborted) {
            log(`early stop: no better validation loss in ${stopper.patience} epoch${stopper.patience > 1 ? 's' : ''} (best ${stopper.best.toFixed(4)} at epoch ${best?.epoch})`);
            emit({ event: 'early-stop', epoch: e.epoch + 1, bestEpoch: best?.epoch, bestValLoss: stopper.best });
            early.abort();
          }
        }
      },
    });
    if (keeper.stopped || (result.aborted && !early.signal.aborted)) {
      if (bar) process.stderr.write('\n');
      return { exitCode: await keeper.stop(trainer, first + result.steps) };
    }
    // The whole state first (before the test evaluation and plots): it is what is worth the most.
    if (keeper.stateMode) {
      await keeper.write(trainer, totalSteps);
      log(`saved the training state to ${keeper.file}`);
    }
    const total = (performance.now() - start) / 1000;
    const ran = Math.ceil((first + result.steps) / perEpoch) - Math.floor(first / perEpoch);
    log(`trained ${result.steps} steps (${ran} epochs) in ${formatDuration(total)}`);
    emit({ event: 'trained', steps: result.steps, epochs: ran, seconds: total });
  } finally {
    keeper.uninstall();
  }
  return { best };
}

/** Sets the training settings the user did not give as flags from `d` (a model file's "training"). */
function applyDefaults(args: TrainArgs, d: TrainingDefaults): void {
  if (!args.given.has('epochs') && !args.given.has('steps') && (d.epochs !== undefined || d.steps !== undefined)) {
    args.epochs = d.epochs;
    args.steps = d.steps;
  }
  if (!args.given.has('batch') && d.batch !== undefined) args.batch = d.batch;
  if (!args.given.has('lr') && d.lr !== undefined) args.lr = d.lr;
  if (!args.given.has('optimizer') && d.optimizer !== undefined) args.optimizer = d.optimizer;
  for (const f of CONTROL_FIELDS) {
    if (!args.given.has(f.flag) && d[f.key] !== undefined) (args as unknown as Record<string, unknown>)[f.key] = d[f.key];
  }
}

/**
 * The model a checkpoint was saved from (--load FILE without --net or --model): a built-in net with
 * its recorded knobs, else the model spec in its metadata. Its recorded batch, lr and optimizer (and
 * a built-in net's training length) are the defaults for flags not given.
 */
function modelOfCheckpoint(args: TrainArgs, ckpt: Checkpoint, file: string): { model: Model; label: string } {
  const m = ckpt.metadata;
  const num = (k: string): number | undefined => (m[k] !== undefined && Number.isFinite(Number(m[k])) ? Number(m[k]) : undefined);
  const lr = num('lr');
  const batch = num('batch');
  applyDefaults(args, {
    lr: lr !== undefined && lr > 0 ? lr : undefined,
    batch: batch !== undefined && Number.isSafeInteger(batch) && batch > 0 ? batch : undefined,
    optimizer: OPTIMIZERS.includes(m.optimizer as OptimizerName) ? (m.optimizer as OptimizerName) : undefined,
  });
  if (m.net !== undefined) {
    if (!NETS.includes(m.net as NetName)) throw new CheckpointError(`${file} records net=${m.net}, which is not a built-in net: give --net or --model with --load`);
    const net = m.net as NetName;
    args.net = net;
    const d = NET_DEFAULTS[net];
    if (!args.given.has('epochs') && !args.given.has('steps')) applyDefaults(args, d.budget);
    args.hidden = num('hidden') ?? d.hidden;
    args.layers = num('layers') ?? d.layers;
    args.cell = CELLS.includes(m.cell as CellName) ? (m.cell as CellName) : d.cell;
    args.keepProb = num('keep_prob') ?? d.keepProb;
    if (!args.given.has('batch') && batch === undefined) args.batch = d.batch;
    if (!args.given.has('lr') && lr === undefined) args.lr = d.lr;
    if (!args.given.has('optimizer') && m.optimizer === undefined) args.optimizer = d.optimizer;
    return { model: builtinModel(net, { hidden: args.hidden, layers: args.layers, cell: args.cell, keepProb: args.keepProb }), label: net };
  }
  if (m.model_spec === undefined) throw new CheckpointError(`${file} records neither a net nor a model spec in its metadata: give --net NAME or --model FILE with --load`);
  let spec: unknown;
  try {
    spec = JSON.parse(m.model_spec);
  } catch (e) {
    throw new CheckpointError(`${file}: its model_spec metadata is not valid JSON (${(e as Error).message}): give --model FILE with --load`);
  }
  return { model: modelFromSpec(spec), label: file };
}

/** Every parameter's shape, by name, as the model's ParamStore will hold them: its graph built on the CPU, no buffers. */
function paramShapes(model: Model): Record<string, readonly number[]> {
  const shapes: Record<string, number[]> = {};
  const store = { get: (name: string, shape: number[]) => { shapes[name] = [...shape]; return undefined as unknown as GPUBuffer; } };
  model.build(store, 1, true, 0);
  return shapes;
}

/** A message on one line (GPU validation messages can span several): its lines joined by " | ". */
function oneLine(msg: string): string {
  return msg.split('\n').map((l) => l.trim()).filter((l) => l.length > 0).join(' | ');
}

async function profile(args: TrainArgs, data: Mnist, trainer: Trainer, log: (s: string) => void, emit: (o: object) => void): Promise<void> {
  if (!trainer.ctx.hasTimestamps) {
    log(`profile: the adapter has no 'timestamp-query' feature, so no GPU times can be measured (training was not affected)`);
    return;
  }
  const idx = new Uint32Array(trainer.batch).map((_, i) => i);
  trainer.writeBatch(data.train, idx);
  const p = await trainer.profile(20, 3);
  if (args.profile) {
    log(`\nGPU time per training step: ${p.stepMs.toFixed(2)} ms (median of 20 steps, one timed pass per op)`);
    log(`${'ms'.padStart(9)} ${'share'.padStart(6)} ${'disp'.padStart(5)}  op`);
    for (const o of p.ops) log(`${o.ms.toFixed(3).padStart(9)} ${(o.share * 100).toFixed(1).padStart(5)}% ${String(o.dispatches).padStart(5)}  ${o.label}`);
    emit({ event: 'profile', stepMs: p.stepMs, ops: p.ops });
  }
  if (args.trace) {
    // Ops in step order, each at its median duration, one after another.
    const byLabel = new Map(p.ops.map((o) => [o.label, o]));
    let t = 0;
    const spans = trainer.graph.ops.map((op) => {
      const o = byLabel.get(op.label)!;
      const s = { name: op.label, startMs: t, durMs: o.ms, args: { dispatches: o.dispatches, share: +(o.share * 100).toFixed(2) } };
      t += o.ms;
      return s;
    });
    mkdirSync(dirname(args.trace), { recursive: true });
    writeFileSync(`${args.trace}.tmp`, chromeTrace(spans, `webgpu-train ${trainer.model.name}`));
    renameSync(`${args.trace}.tmp`, args.trace);
    log(`trace: ${args.trace} (open in chrome://tracing or ui.perfetto.dev)`);
  }
}

process.exitCode = await main(process.argv.slice(2));
