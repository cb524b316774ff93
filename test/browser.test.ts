// The engine in a real browser: Debian's Chromium, headless, WebGPU on its software adapter
// (SwiftShader), driven by playwright-core. The demo server runs in this process on a free port:
// WebGPU needs a secure context, which http://127.0.0.1 is (about:blank and data: URLs are not).
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { dirname } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDemoServer, type DemoServer } from '../tools/demo-server.js';
import { testContext } from './support/gpu.js';
import { fetchMnist } from '../src/data/fetch-mnist.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';
import { modelFromSpec, type ModelSpec } from '../src/nn/spec.js';
import { trainSteps } from '../src/nn/loop.js';
import type { KernelCheck } from './browser/checks.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FIX = 'install Debian\'s chromium (sudo apt-get install -y --no-install-recommends chromium, which `npm run setup` does through tools/setup-chromium.sh), or point CHROMIUM=/path/to/chromium at another build';
/** Where the screenshot of the trained demo goes; DEMO_SCREENSHOT=docs/demo-screenshot.png refreshes the README's. */
const SCREENSHOT = process.env.DEMO_SCREENSHOT ?? 'out/demo-screenshot.png';
const STEPS = 40;
const SEED = 1;
/** Training images the server hands out: the loss comparison needs the same set (and so the same shuffle) on both sides. */
const TRAIN_IMAGES = 4000;
/** The Node kernel tests' bounds on the relative error to float64. */
const BOUND = { forward: 1e-5, backward: 1e-4 } as const;
/** A small conv net the test types into the page's model box, as a person might write it (our spec format): conv 3x3/2 → 13x13x4 → 10. */
const TYPED_MODEL = `{
  "name": "typed_conv",
  "input_shape": [28, 28, 1],
  "layers": [
    { "class_name": "Conv2D",
      "config": { "name": "conv", "filters": 4, "kernel_size": [3, 3],
                  "strides": [2, 2], "activation": "relu" } },
    { "class_name": "Flatten", "config": { "name": "flatten" } },
    { "class_name": "Dense",
      "config": { "name": "scores", "units": 10,
                  "activation": "softmax" } }
  ]
}`;
const TYPED_STEPS = 30;

/** What examples/browser/demo.js publishes as window.demo. */
interface DemoState {
  phase: string;
  error?: string;
  adapter?: string;
  /** The Trainer's options of the last run, less the model (which `spec` gives). */
  options?: Omit<TrainerOptions, 'model'>;
  spec?: ModelSpec;
  summary?: string;
  steps: number;
  losses: number[];
  testAccuracy?: number;
  /** Matrix products whose tile variants the last run timed. */
  tunedProducts: number;
  drawn?: { prediction: number; probabilities: number[] };
}

describe('in a browser: headless Chromium, WebGPU on its own adapter', function () {
  this.timeout(120_000);
  let server: DemoServer;
  let browser: Browser;
  const pageErrors: string[] = [];
  let trained: DemoState | undefined;

  before(async function () {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: ${FIX}`);
    server = await startDemoServer({ port: 0, train: TRAIN_IMAGES });
    const args = [
      '--enable-unsafe-webgpu', // WebGPU on Linux and on a software adapter is behind this flag
      '--disable-dev-shm-usage', // containers often have a tiny /dev/shm
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), // Chromium refuses to run as root with its sandbox
    ];
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args });
    } catch (e) {
      throw new Error(`Chromium at ${CHROMIUM} did not start (${(e as Error).message.split('\n')[0]}): ${FIX}`);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1220, height: 1000 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(server.url + path);
    return page;
  }

  /**
   * The demo page, loaded and ready (no error). Each page has its own storage, so a tuned run times
   * its tiles again (a minute of compiles on lavapipe): only the first test keeps tuning on.
   */
  async function openDemo({ tune = false } = {}): Promise<Page> {
    const page = await open('');
    await page.waitForFunction(() => ['ready', 'error'].includes((window as unknown as { demo?: DemoState }).demo?.phase ?? ''));
    const ready = await demoState(page);
    expect(ready.error, `the page reported an error; page errors: ${pageErrors.join(' | ')}`).to.equal(undefined);
    if (!tune) await page.uncheck('#tune');
    return page;
  }

  const demoState = (page: Page) => page.evaluate(() => (window as unknown as { demo: DemoState }).demo);

  /** Presses Start and waits for the run to end (or to be refused). */
  async function startAndWait(page: Page): Promise<DemoState> {
    await page.click('#start');
    await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { demo: DemoState }).demo.phase), null, { polling: 250 });
    return demoState(page);
  }

  /** A 7 drawn with the mouse on the pad: top bar, then the diagonal down. */
  async function drawSeven(page: Page): Promise<void> {
    const box = (await page.locator('#pad').boundingBox())!;
    const at = (fx: number, fy: number) => [box.x + fx * box.width, box.y + fy * box.height] as const;
    await page.mouse.move(...at(0.25, 0.2));
    await page.mouse.down();
    for (const [fx, fy] of [[0.5, 0.2], [0.75, 0.2], [0.6, 0.5], [0.45, 0.85]]) await page.mouse.move(...at(fx, fy), { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => (window as unknown as { demo: DemoState }).demo.drawn !== undefined);
  }

  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

  it(`the demo page trains the mlp preset ${STEPS} steps: the loss falls, test digits and a drawn 7 are classified`, async () => {
    const page = await openDemo({ tune: true });
    console.log(`      adapter in Chromium: ${(await demoState(page)).adapter}`);

    const t0 = performance.now();
    await page.selectOption('#preset', 'mlp');
    await page.fill('#steps', String(STEPS));
    await page.fill('#seed', String(SEED));
    const run = await startAndWait(page);
    expect(run.error, 'the page reported an error').to.equal(undefined);
    console.log(`      ${STEPS} steps and 2 evaluations in Chromium: ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
      `loss ${run.losses[0].toFixed(4)} → ${run.losses[STEPS - 1].toFixed(4)}, test accuracy ${run.testAccuracy}`);
    expect(run.spec?.name, 'the model trained: the mlp preset').to.equal('mlp');
    expect(run.losses, 'one loss per step').to.have.length(STEPS);
    const first = mean(run.losses.slice(0, 5)), last = mean(run.losses.slice(-5));
    expect(last, `mean loss of the last 5 steps vs the first 5 (${first.toFixed(3)})`).to.be.lessThan(0.5 * first);
    expect(run.testAccuracy, 'test accuracy after the run').to.be.greaterThan(0.7);
    trained = run;
    // The page tuned its products and kept the choices in localStorage, under its adapter's description.
    expect(run.tunedProducts, 'products whose tiles the run timed').to.be.greaterThan(0);
    const kept = await page.evaluate(() => localStorage.getItem('webgpu-train/tuning'));
    const record = JSON.parse(kept ?? 'null') as { adapters: Record<string, Record<string, unknown>> } | null;
    expect(Object.values(record?.adapters ?? {}).map((products) => Object.keys(products).length), 'the tuning record in localStorage').to.deep.equal([run.tunedProducts]);

    await drawSeven(page);
    const drawn = (await demoState(page)).drawn!;
    const sum = drawn.probabilities.reduce((a, b) => a + b, 0);
    console.log(`      drawn 7 predicted as ${drawn.prediction} (p = ${drawn.probabilities[drawn.prediction].toFixed(3)})`);
    expect(sum, 'class probabilities sum to 1').to.be.closeTo(1, 1e-5);
    expect(drawn.prediction, 'the drawn 7').to.equal(7);

    // Download ONNX: ONNX Runtime (in Node) gives the page's test accuracy on the same test images
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#onnx')]);
    expect(download.suggestedFilename()).to.equal('mlp.onnx');
    const file = await download.path();
    const session = await ort.InferenceSession.create(readFileSync(file), { graphOptimizationLevel: 'all' });
    const { test } = await fetchMnist(`${server.url}data/`);
    const { logits } = await session.run({ input: new ort.Tensor('float32', test.images, [test.count, 784]) });
    await session.release();
    const scores = logits.data as Float32Array;
    let correct = 0;
    for (let i = 0; i < test.count; i++) {
      const row = Array.from(scores.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === test.labels[i]) correct++;
    }
    console.log(`      Download ONNX: ${download.suggestedFilename()}, ONNX Runtime test accuracy ${correct / test.count}`);
    expect(correct / test.count, 'ONNX Runtime\'s accuracy of the downloaded model equals the page\'s').to.equal(run.testAccuracy);
    expect(pageErrors, 'errors on the page').to.deep.equal([]);
    await page.close();
  });

  it('Node (Dawn) with the same options, seed, steps and data gives the same per-step losses to 1e-4 relative', async () => {
    if (!trained) throw new Error('needs the browser run of the previous test, which failed');
    const ctx = await testContext();
    const data = await fetchMnist(`${server.url}data/`); // the very bytes the page trained on
    expect(data.train.count).to.equal(TRAIN_IMAGES);
    const trainer = await Trainer.create(ctx, { ...trained.options!, model: modelFromSpec(trained.spec) });
    const losses: number[] = [];
    try {
      await trainSteps(trainer, data.train, { steps: STEPS, seed: SEED, onMetrics: (m) => { losses.push(m.loss); } });
    } finally {
      trainer.destroy();
    }
    const rel = losses.map((l, i) => Math.abs(l - trained!.losses[i]) / Math.abs(l));
    const worst = Math.max(...rel);
    console.log(`      Node (${ctx.adapterDescription.split(' / ')[2] ?? ctx.adapterDescription}): loss ${losses[0].toFixed(6)} → ${losses[STEPS - 1].toFixed(6)}; ` +
      `Chromium: ${trained.losses[0].toFixed(6)} → ${trained.losses[STEPS - 1].toFixed(6)}; largest relative difference over ${STEPS} steps ${worst.toExponential(2)}`);
    rel.forEach((r, i) => expect(r, `step ${i + 1}: Node ${losses[i]}, Chromium ${trained!.losses[i]}`).to.be.lessThan(1e-4));
  });

  it(`a model typed into the page's JSON box trains ${TYPED_STEPS} steps: its summary shows, the loss falls, accuracy is far above chance; screenshot`, async () => {
    const page = await openDemo();
    await page.fill('#model', TYPED_MODEL);
    expect(await page.inputValue('#preset'), 'an edited box is a custom model').to.equal('custom');
    await page.fill('#steps', String(TYPED_STEPS));
    await page.fill('#batch', '50');
    await page.selectOption('#optimizer', 'adam');
    await page.fill('#lr', '0.01');
    await page.fill('#seed', String(SEED));
    const run = await startAndWait(page);
    expect(run.error, 'the page reported an error').to.equal(undefined);
    const summary = await page.textContent('#summary');
    console.log(`      typed model: loss ${run.losses[0].toFixed(4)} → ${run.losses.at(-1)!.toFixed(4)}, test accuracy ${run.testAccuracy}`);
    expect(run.spec?.name, 'the model trained is the typed one').to.equal('typed_conv');
    expect(run.options, 'the run\'s settings').to.deep.include({ batch: 50, seed: SEED, optimizer: { kind: 'adam', lr: 0.01 } });
    expect(summary, 'the summary of the typed model').to.match(/Model: "typed_conv"/).and.match(/conv \(Conv2D\)\s+\(None, 13, 13, 4\)\s+40\b/)
      .and.match(/Total params: 6810\b/);
    expect(run.losses, 'one loss per step').to.have.length(TYPED_STEPS);
    run.losses.forEach((l, i) => expect(Number.isFinite(l), `loss at step ${i + 1}: ${l}`).to.equal(true));
    const first = mean(run.losses.slice(0, 5)), last = mean(run.losses.slice(-5));
    expect(last, `mean loss of the last 5 steps vs the first 5 (${first.toFixed(3)})`).to.be.lessThan(0.6 * first);
    expect(run.testAccuracy, 'test accuracy after the run (chance: 0.1)').to.be.greaterThan(0.5);

    // The pad feeds the typed model (input [28, 28, 1], 784 values) too.
    await drawSeven(page);
    const drawn = (await demoState(page)).drawn!;
    expect(drawn.probabilities, 'one probability per class').to.have.length(10);
    expect(drawn.probabilities.reduce((a, b) => a + b, 0), 'class probabilities sum to 1').to.be.closeTo(1, 1e-5);

    await page.locator('#model').evaluate((box) => { box.scrollTop = 0; }); // the JSON from its top in the picture
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`      screenshot: ${SCREENSHOT}`);
    expect(pageErrors, 'errors on the page').to.deep.equal([]);
    await page.close();
  });

  it('a bad model JSON (an unknown layer) shows one line naming the layer and the fix, and nothing trains', async () => {
    const page = await openDemo();
    const bad = { input_shape: [784], layers: [{ class_name: 'Dense', config: { name: 'hidden', units: 32 } }, { class_name: 'UpSampling2D', config: { name: 'norm' } }, { class_name: 'Dense', config: { units: 10 } }] };
    await page.fill('#model', JSON.stringify(bad, null, 2));
    await page.click('#start'); // the click either refuses (phase "error") or starts a run (phase "training") at once
    await page.waitForFunction(() => (window as unknown as { demo: DemoState }).demo.phase !== 'ready', null, { polling: 50 });
    const run = await demoState(page);
    expect(run.phase, 'Start is refused').to.equal('error');
    const shown = await page.textContent('#error');
    console.log(`      shown: ${shown}`);
    expect(await page.isVisible('#error'), 'the red error box is shown').to.equal(true);
    expect(shown, 'one line').to.not.include('\n');
    expect(shown).to.match(/^ModelSpecError: layer 1 "norm" \(UpSampling2D\): .*not supported: use one of Dense, /);
    expect(run.error, 'the page state names the same error').to.equal(shown);
    expect(run.options, 'no run was set up').to.equal(undefined);
    expect(run.losses, 'no step was trained').to.deep.equal([]);
    expect(await page.textContent('#summary'), 'no summary for a model that does not parse').to.match(/^\(no model/);
    expect(await page.isEnabled('#start'), 'Start stays available').to.equal(true);
    expect(pageErrors, 'errors on the page').to.deep.equal([]);
    await page.close();
  });

  it('matmul, conv2d, LSTM and softmax cross-entropy kernels in Chromium match the float64 references (1e-5 forward, 1e-4 backward)', async () => {
    const page = await open('');
    const checks: KernelCheck[] = await page.evaluate(async () => {
      const m = await import('/lib/test-checks.js' as string);
      const ctx = await m.GpuContext.request(navigator.gpu);
      try {
        return await m.runKernelChecks(ctx, 1);
      } finally {
        ctx.destroy();
      }
    });
    const worst = new Map<string, number>();
    for (const c of checks) {
      const key = `${c.name.replace(/ \[.*| \d+x.*| ×.*/, '')} ${c.pass}`;
      worst.set(key, Math.max(worst.get(key) ?? 0, c.error));
    }
    console.log(`      ${checks.length} outputs; largest relative errors: ${[...worst].map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ')}`);
    expect(checks.length).to.be.greaterThan(100);
    for (const c of checks) expect(c.error, `${c.name} (${c.pass})`).to.be.lessThan(BOUND[c.pass]);
    expect(pageErrors, 'errors on the page').to.deep.equal([]);
    await page.close();
  });
});
