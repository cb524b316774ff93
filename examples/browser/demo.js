// The demo page: trains one of the five MNIST nets with webgpu-train on navigator.gpu, charts loss and
// accuracy as it goes, shows predictions on test digits, and classifies a digit the user draws.
// Served by `npm run demo` (tools/demo-server.ts): the engine bundle is /lib/, the MNIST subset /data/.
import { GpuContext, Trainer, fetchMnist, trainSteps, NET_DEFAULTS } from '/lib/webgpu-train.js';
import { drawChart, drawGrid, drawProbs, setupPad, clearPad, padInput } from './draw.js';

const $ = (id) => document.getElementById(id);

/** What the page did, for the browser test (test/browser.test.ts) to read as `window.demo`. */
const state = { phase: 'loading', adapter: undefined, options: undefined, steps: 0, losses: [], accuracies: [], tests: [], testAccuracy: undefined, drawn: undefined, error: undefined };
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
  const setLr = () => { $('lr').value = String(NET_DEFAULTS[$('net').value].lr); };
  setLr();
  $('net').addEventListener('change', setLr);

  const predictDrawn = async () => {
    const pixels = padInput($('pad'), $('seen'));
    if (!pixels) return;
    if (!trainer) { $('guess').textContent = '?'; $('status').textContent = 'train a net first (Start), then draw'; return; }
    const p = await trainer.predict(pixels, 1);
    state.drawn = { prediction: p.predictions[0], probabilities: Array.from(p.probabilities) };
    $('guess').textContent = String(p.predictions[0]);
    drawProbs($('probs'), p.probabilities);
  };
  setupPad($('pad'), () => predictDrawn().catch(showError));
  $('clear').addEventListener('click', () => { clearPad($('pad')); $('guess').textContent = '–'; drawProbs($('probs')); });

  $('stop').addEventListener('click', () => abort?.abort());
  $('start').addEventListener('click', async () => {
    try {
      $('start').disabled = true;
      $('stop').disabled = false;
      $('error').hidden = true;
      abort = new AbortController();
      trainer?.destroy();
      trainer = undefined;
      await train(ctx, data, abort.signal, (t) => { trainer = t; });
      await predictDrawn(); // a digit already on the pad, by the new net
    } catch (e) {
      showError(e);
    } finally {
      $('start').disabled = false;
      $('stop').disabled = true;
    }
  });
  $('start').disabled = false;
  state.phase = 'ready';
  $('status').textContent = `ready: ${data.train.count} training and ${data.test.count} test images loaded; choose a net and press Start`;
}

/** One run with the controls' settings; hands the trainer over as soon as it exists (the pad uses it). */
async function train(ctx, data, signal, setTrainer) {
  const net = $('net').value;
  const d = NET_DEFAULTS[net];
  const steps = Number($('steps').value);
  const seed = Number($('seed').value);
  const lr = Number($('lr').value);
  if (!(Number.isInteger(steps) && steps > 0)) throw new Error(`steps must be a positive whole number, got "${$('steps').value}"`);
  if (!(lr > 0)) throw new Error(`the learning rate must be a positive number, got "${$('lr').value}"`);
  // The CLI's defaults for this net (src/cli/args.ts); a small evaluation batch keeps one drawn digit cheap.
  const options = { net, seed, batch: d.batch, optimizer: { kind: d.optimizer, lr }, hidden: d.hidden, layers: d.layers, cell: d.cell, keepProb: d.keepProb, evalBatch: 100 };
  Object.assign(state, { phase: 'training', options, steps, losses: [], accuracies: [], tests: [], testAccuracy: undefined });
  $('status').textContent = `compiling the ${net} net…`;
  const trainer = await Trainer.create(ctx, options);
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
  const done = await trainSteps(trainer, data.train, {
    steps, seed, signal,
    onMetrics: async (m) => {
      state.losses.push(m.loss);
      state.accuracies.push(m.accuracy);
      const ms = (performance.now() - t0) / m.step;
      $('status').textContent = `${net}: step ${m.step}/${steps}, loss ${m.loss.toFixed(4)}, batch accuracy ${m.accuracy.toFixed(2)} · ${ms.toFixed(0)} ms/step (${((1000 * d.batch) / ms).toFixed(0)} images/s)`;
      chart();
      if (!Number.isFinite(m.loss)) throw new Error(`the training loss became ${m.loss} at step ${m.step}: lower the learning rate (now ${lr})`);
      if (m.step % evalEvery === 0 && m.step < steps) await evaluate(m.step);
    },
  });
  await evaluate(done);
  const secs = (performance.now() - t0) / 1000;
  $('status').textContent = `${net}: ${done === steps ? 'trained' : 'stopped after'} ${done} steps in ${secs.toFixed(1)} s; final loss ${state.losses.at(-1)?.toFixed(4)}, test accuracy ${(100 * state.testAccuracy).toFixed(1)}% · draw a digit on the black pad`;
  state.phase = 'done';
}

main().catch(showError);
