// The adapter's fp32 FMA peak (shaders/fma_peak.wgsl), the denominator of the tools' rooflines
// (tools/bench.ts, tools/bench-matmul.ts, tools/gpu-check-run.ts).
import type { GpuContext } from '../src/gpu/context.js';
import { PassTimer } from '../src/gpu/profiler.js';
import { sleep } from './bench-common.js';

/** The best FMA throughput the adapter showed, and the entry point and dispatch time that gave it. */
export interface Peak {
  gflops: number;
  entry: string;
  ms: number;
  /** Workgroups of the dispatch that gave it (64 invocations each). */
  groups: number;
}

/**
 * The highest of several peak readings: the adapter's limit is the best it shows, and a reading
 * taken while the machine is slow would inflate every share of it.
 */
export function highestPeak(readings: readonly Peak[]): Peak {
  return readings.reduce((best, p) => (p.gflops > best.gflops ? p : best));
}

/**
 * The adapter's fp32 FMA peak in GFLOPS: shaders/fma_peak.wgsl's three entry points, each timed with
 * the loop grown until one dispatch takes at least 40 ms, the fastest of 5 dispatches, the best entry.
 * `groups` workgroups of 64 per dispatch (default 512, 32,768 invocations: enough for a software
 * adapter; a large GPU wants more in flight to hide the FMA latency).
 */
export async function measureFmaPeak(ctx: GpuContext, log: (s: string) => void = () => {}, groups = 512): Promise<Peak> {
  const WG = 64;
  const out = ctx.storage(groups * WG * 4, 'fma peak out');
  const timer = new PassTimer(ctx, 8);
  let best: Peak = { gflops: 0, entry: '', ms: 0, groups };
  // Entry point and vec4 FMAs per loop round (chains x unrolled copies, as in the shader).
  for (const [entry, fmas] of [['peak2', 8], ['peak4', 16], ['peak8', 16]] as const) {
    const kernel = ctx.kernel('fma_peak.wgsl', entry, { WG });
    await kernel.ready;
    const time = async (iters: number, runs: number, expectMs: number): Promise<number[]> => {
      const params = kernel.params({ iters, a: 0.9999, b: 1e-4 }, 'fma peak params');
      const bind = kernel.bind({ params, out });
      timer.reset();
      const enc = ctx.device.createCommandEncoder();
      for (let r = 0; r < runs; r++) {
        const pass = enc.beginComputePass(timer.pass(`${entry} ${r}`));
        pass.setPipeline(kernel.pipeline);
        pass.setBindGroup(0, bind);
        pass.dispatchWorkgroups(groups);
        pass.end();
      }
      timer.resolve(enc);
      ctx.device.queue.submit([enc.finish()]);
      if (expectMs > 2) await sleep(expectMs * runs * 0.9);
      const t = (await timer.read()).map((x) => x.ns / 1e6);
      ctx.release(params);
      return t;
    };
    // Grow the loop until one dispatch takes ≥ 40 ms of GPU time, then take the fastest of 5
    // (a peak: the best the adapter showed; a shared machine only ever slows a run down).
    let iters = 64;
    await time(iters, 1, 0); // the first dispatch of a pipeline can carry one-time costs
    let ms = (await time(iters, 1, 0))[0];
    while (ms < 40 && iters < 1 << 22) {
      const grow = Math.min(16, Math.max(2, Math.ceil(50 / Math.max(ms, 0.1))));
      iters *= grow;
      ms = (await time(iters, 1, ms * grow))[0];
    }
    ms = Math.min(...(await time(iters, 5, ms)));
    const flops = groups * WG * iters * fmas * 4 * 2;
    const gflops = flops / (ms * 1e6);
    log(`fma peak ${entry} (${groups} workgroups): ${iters} iterations, ${ms.toFixed(2)} ms, ${gflops.toFixed(1)} GFLOPS`);
    if (gflops > best.gflops) best = { gflops, entry, ms, groups };
  }
  timer.destroy();
  ctx.release(out);
  ctx.throwIfFailed('fma peak');
  return best;
}
