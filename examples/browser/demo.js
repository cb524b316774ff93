// The demo page: trains a model given as JSON (the spec of docs/MODEL-SPEC.md or a Keras
// model.to_json(); the five built-in nets are presets) with webgpu-train on navigator.gpu, charts loss
// and accuracy as it goes, shows predictions on test digits, and classifies a digit the user draws.
// Served by `npm run demo` (tools/demo-server.ts): the engine bundle is /lib/, the MNIST subset /data/.
import {
  GpuContext, MatmulTuner, ModelSpecError, Trainer, builtinModel, localStorageTuningStore, fetchMnist, modelFromKeras, modelFromSpec, modelToSpec, trainSteps, NET_DEFAULTS,
} from '/lib/webgpu-train.js';
import { drawChart, drawGrid, drawProbs, setupPad, clearPad, padInput } from './draw.js';

const $ = (id) => document.getElementById(id);

/** What the page did, for the browser test (test/browser.test.ts) to read as `window.demo`. */
const state = { phase: 'loading', adapter: undefined, tunedProducts: 0, options: undefined, spec: undefined, summary: undefined, steps: 0, losses: [], accuracies: [], tests: [], testAccuracy: undefined, drawn: undefined, error: undefined };
window.demo = state;

function showError(e) {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  state.error = msg;
  state.phase = 'error';
  $('error').textContent = msg;
  $('error').hidden = false;
  $('status').textContent = 'stopped by an error (see above)';
  if (!state.adapter) $('adapter').textContent = 'adapter: none';
  console.error(e);
}
window.addEventListener('error', (ev) => showError(ev.error ?? ev.message));
window.addEventListener('unhandledrejection', (ev) => showError(ev.reason));

/** Why there is no WebGPU here, and what to do about it. */
function noWebGpu() {
  if (!window.isSecureContext) {
    return `This page is not a secure context (${location.origin}), and WebGPU exists only in secure contexts: open it as http://127.0.0.1:PORT/ or http://localhost:PORT/ (as npm run demo prints), or over https.`;
  }
  return 'This browser exposes no WebGPU (navigator.gpu is missing). Use a browser with WebGPU (Chrome or Edge 113+, Safari 26, Firefox 141+ on Windows), or start Chromium with --enable-unsafe-webgpu (on Linux also --enable-features=Vulkan).';
}

function describe(ctx) {
  const info = ctx.device.adapterInfo ?? {};
  const f = (name) => (ctx.device.features.has(name) ? 'yes' : 'no');
  const parts = [
    `adapter: vendor "${info.vendor ?? '?'}", architecture "${info.architecture ?? '?'}"`,
    info.description ? `description "${info.description}"` : undefined,
    info.device ? `device "${info.device}"` : undefined,
    `subgroups ${f('subgroups')}${info.subgroupMinSize ? ` (size ${info.subgroupMinSize}-${info.subgroupMaxSize})` : ''}`,
    `timestamp-query ${f('timestamp-query')}`,
    `shader-f16 ${ctx.device.features.has('shader-f16') ? 'yes' : 'no'}`,
    `max ${ctx.limits.maxComputeInvocationsPerWorkgroup} invocations/workgroup`,
  ];
  return parts.filter(Boolean).join(' · ');
}

/** Steps a preset sets: a demo-sized run (the CLI's NET_DEFAULTS budgets are whole trainings of minutes to hours). */
const PRESET_STEPS = 300;

/** JSON two-space indented, with each value that fits on a line of 76 characters (after `prefix` more, its key) on one line. */
function formatJson(value, indent = '', prefix = 0) {
  const oneLine = JSON.stringify(value, null, 1).replace(/\n\s*/g, ' ').replace(/\[ /g, '[').replace(/ \]/g, ']');
  if (value === null || typeof value !== 'object' || indent.length + prefix + oneLine.length <= 76) return oneLine;
  const inner = `${indent}  `;
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + formatJson(v, inner)).join(',\n')}\n${indent}]`;
  const fields = Object.entries(value).filter(([, v]) => v !== undefined);
  return `{\n${fields.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner, k.length + 4)}`).join(',\n')}\n${indent}}`;
}

/** The model in the text box: a Keras to_json() (it has "class_name" at the top) or our spec. Throws ModelSpecError. */
function parseModel(text) {
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    return modelFromSpec(text); // throws the library's one-line "not valid JSON" error
  }
  return typeof json?.class_name === 'string' ? modelFromKeras(json) : modelFromSpec(json);
}

/** Why `model` cannot train on `data` (MNIST: 784 values per image, 10 classes), or undefined. */
function misfit(model, data) {
  const size = data.shape.reduce((a, b) => a * b, 1);
  if (model.inputSize !== size) {
    return `the model's input_shape [${model.inputShape.join(', ')}] has ${model.inputSize} values per example, but the MNIST images have ${size} (${data.shape.join('x')}): use input_shape [784], [28, 28, 1] or (recurrent) [28, 28]`;
  }
  if (model.classes !== data.classes) return `the model's output has ${model.classes} class scores, but MNIST has ${data.classes} classes: give the last layer ${data.classes} units`;
  return undefined;
}

async function main() {
  if (!navigator.gpu) throw new Error(noWebGpu());
  const [ctx, data] = await Promise.all([GpuContext.request(navigator.gpu), fetchMnist(new URL('data/', location.href))]);
  state.adapter = ctx.adapterDescription;
  $('adapter').textContent = describe(ctx);
  ctx.device.lost.then((info) => { if (info.reason !== 'destroyed') showError(new Error(`the GPU device was lost (${info.reason}: ${info.message}); reload the page`)); });
  drawGrid($('grid'), data.test);
  drawChart($('chart'), { steps: 1, losses: [], accuracies: [], tests: [] });
  drawProbs($('probs'));
  clearPad($('pad'));

  let trainer;
  let abort;
  let specShown = false; // the red box holds a spec error of the text box (cleared once the box parses)
  let refused = false; // Start was refused for that error: the page is ready again once the box parses

  /** The pad classifies 28x28 drawings: off, with a note, when the model in the box reads another input size. */
  const setPad = (model) => {
    const fits = !model || model.inputSize === 28 * 28;
    $('pad').classList.toggle('off', !fits);
    $('pad-note').textContent = fits ? '' : `The pad draws 28x28 = 784 pixels; this model reads input_shape [${model.inputShape.join(', ')}], so the pad is off.`;
    return fits;
  };

  /** Shows a spec error of the text box in the red box, as one line. */
  const specError = (message) => {
    $('error').textContent = `ModelSpecError: ${message}`;
    $('error').hidden = false;
    specShown = true;
  };

  /** Parses the text box and shows the model's summary, or the spec error; returns the model, or undefined. */
  const readBox = () => {
    let model;
    try {
      model = parseModel($('model').value);
    } catch (e) {
      if (!(e instanceof ModelSpecError)) throw e;
      state.summary = undefined;
      $('summary').textContent = '(no model: see the error above)';
      setPad(undefined);
      specError(e.message);
      return undefined;
    }
    state.summary = model.summary();
    $('summary').textContent = state.summary;
    setPad(model);
    const problem = misfit(model, data);
    if (problem) { specError(problem); return undefined; }
    if (specShown) { $('error').hidden = true; specShown = false; }
    if (refused) { refused = false; state.error = undefined; state.phase = 'ready'; $('status').textContent = 'ready: press Start'; }
    return model;
  };

  const choosePreset = () => {
    const net = $('preset').value;
    if (!(net in NET_DEFAULTS)) return; // "custom": the box keeps what was typed
    const d = NET_DEFAULTS[net];
    $('model').value = formatJson(modelToSpec(builtinModel(net, d))); // with the net's knobs (e.g. the cnn's dropout)
    $('lr').value = String(d.lr);
    $('optimizer').value = d.optimizer;
    $('batch').value = String(d.batch);
    $('steps').value = String(PRESET_STEPS);
    readBox();
  };
  choosePreset();
  $('preset').addEventListener('change', choosePreset);
  let typing;
  $('model').addEventListener('input', () => {
    $('preset').value = 'custom';
    clearTimeout(typing);
    typing = setTimeout(readBox, 300);
  });

  const predictDrawn = async () => {
    const pixels = padInput($('pad'), $('seen'));
    if (!pixels) return;
    if (!trainer) { $('guess').textContent = '?'; $('status').textContent = 'train a model first (Start), then draw'; return; }
    if (trainer.model.inputSize !== pixels.length) { $('guess').textContent = '–'; return; }
    const p = await trainer.predict(pixels, 1);
    state.drawn = { prediction: p.predictions[0], probabilities: Array.from(p.probabilities) };
    $('guess').textContent = String(p.predictions[0]);
    drawProbs($('probs'), p.probabilities);
  };
  setupPad($('pad'), () => predictDrawn().catch(showError));
  $('clear').addEventListener('click', () => { clearPad($('pad')); $('guess').textContent = '–'; drawProbs($('probs')); });

  $('stop').addEventListener('click', () => abort?.abort());

  // The whole training state as a file, and a run continued from one (Trainer.saveState / restoreState).
  let lastRun; // { steps, done } of the trainer's last run
  /** The buttons after a run (or a restore) ended: start again, or download what the trainer holds. */
  function runEnded() {
    $('start').disabled = false;
    $('stop').disabled = true;
    $('download').disabled = !trainer;
    $('onnx').disabled = !trainer;
  }
  /** Hands `bytes` to the browser as a download named `name`. */
  function downloadBytes(bytes, name) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
  }
  $('download').addEventListener('click', async () => {
    if (!trainer || !lastRun) return;
    const bytes = await trainer.saveState({ demo_steps: String(lastRun.steps) });
    downloadBytes(bytes, `${trainer.model.name}-step${lastRun.done}.state.safetensors`);
  });
  $('upload').addEventListener('change', async () => {
    const file = $('upload').files?.[0];
    $('upload').value = '';
    if (!file || $('start').disabled) return; // not while a run is going
    try {
      $('start').disabled = true;
      $('download').disabled = true;
      $('onnx').disabled = true;
      $('error').hidden = true;
      state.error = undefined;
      const bytes = new Uint8Array(await file.arrayBuffer());
      $('status').textContent = `restoring ${file.name}…`;
      trainer?.destroy();
      trainer = undefined;
      const restored = await Trainer.restoreState(ctx, bytes, { evalBatch: 100 }); // throws StateError on a damaged file
      trainer = restored.trainer;
      const o = trainer.opts;
      $('preset').value = 'custom';
      $('model').value = formatJson(JSON.parse(restored.state.metadata.model_spec));
      const model = readBox();
      $('batch').value = String(o.batch);
      $('seed').value = String(o.seed);
      $('lr').value = String(o.optimizer.lr);
      $('optimizer').value = o.optimizer.kind;
      const recorded = Number(restored.state.metadata.demo_steps);
      const steps = Math.max(Number.isInteger(recorded) ? recorded : Number($('steps').value), restored.state.step + 1);
      $('steps').value = String(steps);
      $('stop').disabled = false;
      abort = new AbortController();
      await train(ctx, data, model ?? trainer.model, abort.signal, () => {}, { trainer, startStep: restored.state.step });
      lastRun = { steps, done: state.done };
      await predictDrawn();
    } catch (e) {
      showError(e);
    } finally {
      runEnded();
    }
  });

  // The trained model as an ONNX file: input [batch, ...input_shape] (pixels / 255) → logits, probabilities.
  $('onnx').addEventListener('click', async () => {
    if (!trainer) return;
    try {
      const K = trainer.model.classes;
      const bytes = await trainer.exportOnnx({ classNames: Array.from({ length: K }, (_, i) => String(i)), inputScaling: 'u8/255' });
      const name = `${trainer.model.name}.onnx`;
      downloadBytes(bytes, name);
      $('status').textContent = `downloaded ${name} (${(bytes.length / 1e6).toFixed(2)} MB, ONNX opset 17)`;
    } catch (e) {
      showError(e);
    }
  });
  $('start').addEventListener('click', async () => {
    clearTimeout(typing);
    $('error').hidden = true;
    const model = readBox();
    if (!model) { // a spec error: shown in the red box by readBox; nothing starts
      state.error = $('error').textContent;
      state.phase = 'error';
      refused = true;
      $('status').textContent = 'not started: fix the model JSON (see the error above)';
      return;
    }
    specShown = false;
    try {
      $('start').disabled = true;
      $('stop').disabled = false;
      $('onnx').disabled = true;
      state.error = undefined;
      abort = new AbortController();
      trainer?.destroy();
      trainer = undefined;
      $('download').disabled = true;
      await train(ctx, data, model, abort.signal, (t) => { trainer = t; });
      lastRun = { steps: state.steps, done: state.done };
      await predictDrawn(); // a digit already on the pad, by the new model
    } catch (e) {
      showError(e);
    } finally {
      runEnded();
    }
  });
  $('start').disabled = false;
  state.phase = 'ready';
  $('status').textContent = `ready: ${data.train.count} training and ${data.test.count} test images loaded; choose a preset or edit the model, then press Start`;
}

/**
 * One run of `model` with the controls' settings; hands the trainer over as soon as it exists (the pad
 * uses it). With `resume` ({ trainer, startStep }: a restored state), that trainer goes on from startStep.
 */
async function train(ctx, data, model, signal, setTrainer, resume) {
  const steps = Number($('steps').value);
  const seed = Number($('seed').value);
  const lr = Number($('lr').value);
  const batch = Number($('batch').value);
  if (!(Number.isInteger(steps) && steps > 0)) throw new Error(`steps must be a positive whole number, got "${$('steps').value}"`);
  if (!(Number.isInteger(batch) && batch > 0)) throw new Error(`the batch size must be a positive whole number, got "${$('batch').value}"`);
  if (!(lr > 0)) throw new Error(`the learning rate must be a positive number, got "${$('lr').value}"`);
  // A small evaluation batch keeps one drawn digit cheap. state.options and state.spec rebuild this run (the browser test does, in Node).
  const options = { seed, batch, optimizer: { kind: $('optimizer').value, lr }, evalBatch: 100 };
  Object.assign(state, { phase: 'training', options, spec: modelToSpec(model), steps, losses: [], accuracies: [], tests: [], testAccuracy: undefined, drawn: undefined });
  const name = model.name;
  $('status').textContent = `compiling the model "${name}"…`;
  const first = resume?.startStep ?? 0;
  // Matmul tiles timed the first time this adapter meets a product, the choices kept in localStorage (the numbers do not change).
  const tuner = $('tune').checked ? new MatmulTuner(ctx, {
    store: localStorageTuningStore(),
    onTiming: (n) => { $('status').textContent = `compiling "${name}": timing matmul tile variants for ${n} products (once per adapter: the choices are kept in this browser)…`; },
  }) : false;
  const trainer = resume?.trainer ?? await Trainer.create(ctx, { ...options, model, tuning: tuner });
  state.tunedProducts = tuner ? tuner.tunedProducts : 0;
  setTrainer(trainer);
  const evalEvery = Math.max(25, Math.round(steps / 8));
  const chart = () => drawChart($('chart'), { steps, losses: state.losses, accuracies: state.accuracies, tests: state.tests });
  const evaluate = async (step) => {
    const ev = await trainer.evaluate(data.test);
    state.tests.push({ step, accuracy: ev.accuracy });
    state.testAccuracy = ev.accuracy;
    drawGrid($('grid'), data.test, ev.predictions);
    $('grid-title').textContent = `Test digits: accuracy ${(100 * ev.accuracy).toFixed(1)}% on ${data.test.count} test images after ${step} steps`;
    chart();
  };
  const t0 = performance.now();
  const ran = await trainSteps(trainer, data.train, {
    steps: steps - first, startStep: first, seed, signal,
    onMetrics: async (m) => {
      state.losses.push(m.loss);
      state.accuracies.push(m.accuracy);
      const ms = (performance.now() - t0) / (m.step - first);
      $('status').textContent = `${name}: step ${m.step}/${steps}, loss ${m.loss.toFixed(4)}, batch accuracy ${m.accuracy.toFixed(2)} · ${ms.toFixed(0)} ms/step (${((1000 * batch) / ms).toFixed(0)} images/s)`;
      chart();
      if (!Number.isFinite(m.loss)) throw new Error(`the training loss became ${m.loss} at step ${m.step}: lower the learning rate (now ${lr})`);
      if (m.step % evalEvery === 0 && m.step < steps) await evaluate(m.step);
    },
  });
  const done = first + ran;
  state.done = done;
  await evaluate(done);
  const secs = (performance.now() - t0) / 1000;
  $('status').textContent = `${name}: ${done === steps ? 'trained' : 'stopped after'} ${done} steps${first ? ` (${ran} after the restored step ${first})` : ''} in ${secs.toFixed(1)} s; final loss ${state.losses.at(-1)?.toFixed(4)}, test accuracy ${(100 * state.testAccuracy).toFixed(1)}% · draw a digit on the black pad`;
  state.phase = 'done';
}

main().catch(showError);
