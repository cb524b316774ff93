// GPU time of the cnn's two convolutions (forward; backward = dFilter, dBias and dx), from timestamp
// queries: median over rounds. With --against <repo-root>, the same convolutions by another build
// of the engine (its dist/, e.g. the main checkout) in the same process, alternating with this
// one round by round, so both see the same machine load; ratios are this build's time over the
// other's.
import { pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { createNodeContext } from '../src/gpu/node.js';
import type { GpuContext } from '../src/gpu/context.js';
import * as conv from '../src/kernels/conv2d.js';
import type { Conv2dKernel, Conv2dSpec } from '../src/kernels/conv2d.js';
import { DispatchEncoder, type Dispatch } from '../src/gpu/dispatch.js';
import { PassTimer, median } from '../src/gpu/profiler.js';
import { failUsage, toolFlags } from './tool-args.js';

const usage = 'usage: node dist/tools/bench-conv.js [--batch N] [--rounds N] [--kernel subgroup|tiled] [--against DIR]';
const flags = toolFlags(process.argv.slice(2), [
  { name: 'batch', kind: 'int', arg: 'N', help: 'examples per batch (default 100)' },
  { name: 'rounds', kind: 'int', arg: 'N', help: 'timed rounds, after one warm-up (default 7)' },
  { name: 'kernel', kind: 'choice', choices: ['subgroup', 'tiled'], arg: 'subgroup|tiled', help: "this build's convolution kernel (default: the adapter's, conv2dKernelFor)" },
  { name: 'against', kind: 'string', arg: 'DIR', help: 'the root of another checkout, built, timed in the same process' },
], usage);
const batch = (flags.get('batch') as number | undefined) ?? 100;
const rounds = (flags.get('rounds') as number | undefined) ?? 7;
if (batch < 1 || rounds < 1) failUsage(`--batch ${batch} and --rounds ${rounds} must be at least 1`);
const kernel = flags.get('kernel') as Conv2dKernel | undefined;
const against = flags.get('against') as string | undefined;

const LAYERS: Conv2dSpec[] = [
  { batch, inH: 28, inW: 28, inC: 1, kH: 5, kW: 5, outC: 32, padding: 'SAME', activation: 'relu', label: 'conv1' },
  { batch, inH: 14, inW: 14, inC: 32, kH: 5, kW: 5, outC: 64, padding: 'SAME', activation: 'relu', label: 'conv2' },
];

/** One build's convolution dispatches for a layer: forward, and backward as the cnn runs it (dx only past the first layer). */
interface Side { name: string; ctx: GpuContext; timer: PassTimer; make(spec: Conv2dSpec): Promise<{ forward: Dispatch[]; backward: Dispatch[] }> }

function fill(ctx: GpuContext, floats: number, seed: number): GPUBuffer {
  const a = new Float32Array(floats);
  for (let i = 0; i < floats; i++) a[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return ctx.upload(a);
}

function buffers(ctx: GpuContext, s: Conv2dSpec) {
  const g = conv.conv2dGeometry(s);
  const nx = s.batch * s.inH * s.inW * s.inC;
  return {
    x: fill(ctx, nx, 1), filter: fill(ctx, g.patch * s.outC, 2), bias: fill(ctx, s.outC, 3), dy: fill(ctx, g.rows * s.outC, 4),
    y: ctx.storage(g.rows * s.outC * 4), dx: ctx.storage(nx * 4), dFilter: ctx.storage(g.patch * s.outC * 4), dBias: ctx.storage(s.outC * 4),
  };
}

async function thisBuild(): Promise<Side> {
  const ctx = await createNodeContext();
  return {
    name: 'this build', ctx, timer: new PassTimer(ctx, 4),
    async make(s) {
      const b = buffers(ctx, s);
      return {
        forward: conv.conv2dForward(ctx, { ...s, kernel }, b),
        backward: conv.conv2dBackward(ctx, { ...s, kernel }, { dy: b.dy, filter: b.filter, x: b.x, dx: s.label === 'conv1' ? undefined : b.dx, dFilter: b.dFilter, dBias: b.dBias }),
      };
    },
  };
}

/** The other build: im2col + matmul when it predates the implicit GEMM (its own context, shaders and kernels). */
async function otherBuild(root: string): Promise<Side> {
  const imp = (p: string) => import(pathToFileURL(join(resolve(root), 'dist', p)).href);
  const { createNodeContext: create } = await imp('src/gpu/node.js');
  const { PassTimer: Timer } = await imp('src/gpu/profiler.js');
  const other = await imp('src/kernels/conv2d.js');
  const ctx: GpuContext = await create();
  return {
    name: root, ctx, timer: new Timer(ctx, 4),
    async make(s) {
      const b = buffers(ctx, s);
      const dx = s.label === 'conv1' ? undefined : b.dx;
      if (!other.conv2dColsBytes) {
        return {
          forward: other.conv2dForward(ctx, s, b),
          backward: other.conv2dBackward(ctx, s, { dy: b.dy, filter: b.filter, x: b.x, dx, dFilter: b.dFilter, dBias: b.dBias }),
        };
      }
      // As its conv2d op lowered it: the backward recomputes im2col into a scratch that then holds dy·Wᵀ.
      const cols = ctx.storage(other.conv2dColsBytes(s)), scratch = ctx.storage(other.conv2dColsBytes(s));
      return {
        forward: other.conv2dForward(ctx, s, { ...b, cols }),
        backward: [
          other.prepareIm2col(ctx, s, { x: b.x, cols: scratch }),
          ...other.conv2dBackward(ctx, s, { dy: b.dy, filter: b.filter, cols: scratch, dCols: scratch, dx, dFilter: b.dFilter, dBias: b.dBias }),
        ],
      };
    },
  };
}

async function time(side: Side, ds: Dispatch[]): Promise<number> {
  await Promise.all(ds.map((d) => d.kernel.ready));
  side.timer.reset();
  const enc = side.ctx.device.createCommandEncoder();
  new DispatchEncoder(enc).encode(ds, side.timer.pass('op'));
  side.timer.resolve(enc);
  side.ctx.device.queue.submit([enc.finish()]);
  const [t] = await side.timer.read();
  side.ctx.throwIfFailed('bench-conv');
  return t.ns / 1e6;
}

const sides = [await thisBuild(), ...(against ? [await otherBuild(against)] : [])];
console.log(`adapter: ${sides[0].ctx.adapterDescription}; batch ${batch}, ${rounds} rounds (plus one warm-up), sides alternating within each round`);
const rows: string[] = [];
for (const s of LAYERS) {
  const made = await Promise.all(sides.map((side) => side.make(s)));
  const ms = sides.map(() => ({ forward: [] as number[], backward: [] as number[] }));
  for (let r = 0; r <= rounds; r++) {
    for (const [i, side] of sides.entries()) {
      for (const part of ['forward', 'backward'] as const) {
        const t = await time(side, made[i][part]);
        if (r > 0) ms[i][part].push(t);
      }
    }
  }
  for (const part of ['forward', 'backward'] as const) {
    const meds = ms.map((m) => median(m[part]));
    const ratio = meds.length > 1 ? ` | ${(meds[1] / meds[0]).toFixed(2)}x` : '';
    const row = `| ${s.label} ${part} | ${meds.map((m) => m.toFixed(2)).join(' | ')}${ratio} |`;
    rows.push(row);
    console.log(row, '  rounds:', ms.map((m) => m[part].map((t) => t.toFixed(1)).join(' ')).join(' / '));
  }
}
const head = `| op (batch ${batch}) | ${sides.map((s) => `${s.name} ms`).join(' | ')}${sides.length > 1 ? ' | speed-up (other / this)' : ''} |`;
console.log(`\n${head}\n|${'---|'.repeat(head.split('|').length - 2)}\n${rows.join('\n')}`);
for (const side of sides) { side.timer.destroy(); side.ctx.destroy(); }
