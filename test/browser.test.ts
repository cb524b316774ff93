// The engine in a real browser: Debian's Chromium, headless, WebGPU on its software adapter
// (SwiftShader), driven by playwright-core. The demo server runs in this process on a free port:
// WebGPU needs a secure context, which http://127.0.0.1 is (about:blank and data: URLs are not).
import { expect } from 'chai';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDemoServer, type DemoServer } from '../tools/demo-server.js';
import { testContext } from './support/gpu.js';
import { fetchMnist } from '../src/data/fetch-mnist.js';
import { Trainer, type TrainerOptions } from '../src/nn/trainer.js';
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

/** What examples/browser/demo.js publishes as window.demo. */
interface DemoState {
  phase: string;
  error?: string;
  adapter?: string;
  options?: TrainerOptions;
  steps: number;
  losses: number[];
  testAccuracy?: number;
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

  it(`the demo page trains the mlp ${STEPS} steps: the loss falls, test digits and a drawn 7 are classified; screenshot`, async () => {
    const page = await open('');
    await page.waitForFunction(() => ['ready', 'error'].includes((window as unknown as { demo?: DemoState }).demo?.phase ?? ''));
    const state = () => page.evaluate(() => (window as unknown as { demo: DemoState }).demo);
    const ready = await state();
    expect(ready.error, `the page reported an error; page errors: ${pageErrors.join(' | ')}`).to.equal(undefined);
    console.log(`      adapter in Chromium: ${ready.adapter}`);

    const t0 = performance.now();
    await page.selectOption('#net', 'mlp');
    await page.fill('#steps', String(STEPS));
    await page.fill('#seed', String(SEED));
    await page.click('#start');
    await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { demo: DemoState }).demo.phase), null, { polling: 250 });
    const run = await state();
    expect(run.error, 'the page reported an error').to.equal(undefined);
    console.log(`      ${STEPS} steps and 2 evaluations in Chromium: ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
      `loss ${run.losses[0].toFixed(4)} → ${run.losses[STEPS - 1].toFixed(4)}, test accuracy ${run.testAccuracy}`);
    expect(run.losses, 'one loss per step').to.have.length(STEPS);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const first = mean(run.losses.slice(0, 5)), last = mean(run.losses.slice(-5));
    expect(last, `mean loss of the last 5 steps vs the first 5 (${first.toFixed(3)})`).to.be.lessThan(0.5 * first);
    expect(run.testAccuracy, 'test accuracy after the run').to.be.greaterThan(0.7);
    trained = run;

    // A 7 drawn with the mouse: top bar, then the diagonal down.
    const box = (await page.locator('#pad').boundingBox())!;
    const at = (fx: number, fy: number) => [box.x + fx * box.width, box.y + fy * box.height] as const;
    await page.mouse.move(...at(0.25, 0.2));
    await page.mouse.down();
    for (const [fx, fy] of [[0.5, 0.2], [0.75, 0.2], [0.6, 0.5], [0.45, 0.85]]) await page.mouse.move(...at(fx, fy), { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => (window as unknown as { demo: DemoState }).demo.drawn !== undefined);
    const drawn = (await state()).drawn!;
    const sum = drawn.probabilities.reduce((a, b) => a + b, 0);
    console.log(`      drawn 7 predicted as ${drawn.prediction} (p = ${drawn.probabilities[drawn.prediction].toFixed(3)})`);
    expect(sum, 'class probabilities sum to 1').to.be.closeTo(1, 1e-5);
    expect(drawn.prediction, 'the drawn 7').to.equal(7);

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`      screenshot: ${SCREENSHOT}`);
    expect(pageErrors, 'errors on the page').to.deep.equal([]);
    await page.close();
  });

  it('Node (Dawn) with the same options, seed, steps and data gives the same per-step losses to 1e-4 relative', async () => {
    if (!trained) throw new Error('needs the browser run of the previous test, which failed');
    const ctx = await testContext();
    const data = await fetchMnist(`${server.url}data/`); // the very bytes the page trained on
    expect(data.train.count).to.equal(TRAIN_IMAGES);
    const trainer = await Trainer.create(ctx, trained.options!);
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
