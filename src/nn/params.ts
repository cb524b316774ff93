import type { GpuContext } from '../gpu/context.js';
import { GraphError } from '../graph/graph.js';
import { mulberry32 } from '../data/random.js';

/** How a parameter starts. */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'const'; value: number }
  | { kind: 'normal'; std: number }
  /** Normal, re-drawn beyond 2 std (tf.truncated_normal). */
  | { kind: 'truncated_normal'; std: number }
  | { kind: 'uniform'; limit: number }
  /** Glorot/Xavier uniform: limit sqrt(6 / (fanIn + fanOut)). */
  | { kind: 'glorot_uniform'; fanIn: number; fanOut: number };

interface Entry {
  shape: number[];
  buffer: GPUBuffer;
  init: Init;
  /** false: a persistent weight no optimizer updates (batch norm's moving statistics). */
  trainable: boolean;
}

/**
 * The parameters of a model, on the GPU: trainable ones and persistent non-trainable weights
 * (batch norm's moving statistics), which checkpoints carry alike. Every graph of the model (training, evaluation,
 * other batch sizes) binds the same buffers, so they always see the current weights.
 */
export class ParamStore {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly ctx: GpuContext, readonly seed: number) {}

  /** The buffer of parameter `name`, created and initialised on first use (`trainable: false`: a persistent weight). */
  get(name: string, shape: number[], init: Init, opts: { trainable?: boolean } = {}): GPUBuffer {
    const trainable = opts.trainable ?? true;
    const e = this.entries.get(name);
    if (e) {
      if (e.shape.join() !== shape.join()) throw new GraphError(`parameter ${name} is [${e.shape}] but asked for as [${shape}]`);
      if (e.trainable !== trainable) throw new GraphError(`parameter ${name} is ${e.trainable ? '' : 'non-'}trainable but asked for as ${trainable ? '' : 'non-'}trainable`);
      return e.buffer;
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const data = initialValues(n, init, seedFor(this.seed, name));
    const buffer = this.ctx.upload(data, name);
    this.entries.set(name, { shape, buffer, init, trainable });
    return buffer;
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether `name` is trainable (false: a persistent weight such as a moving statistic). */
  isTrainable(name: string): boolean {
    const e = this.entries.get(name);
    if (!e) throw new GraphError(`no parameter named ${name}`);
    return e.trainable;
  }

  /** The shape of every stored tensor, by name. */
  shapes(): Record<string, number[]> {
    return Object.fromEntries([...this.entries].map(([k, e]) => [k, e.shape]));
  }

  /** The GPU buffer of the stored tensor `name`; throws for an unknown name. */
  buffer(name: string): GPUBuffer {
    const e = this.entries.get(name);
    if (!e) throw new GraphError(`no parameter named ${name}`);
    return e.buffer;
  }

  /** Copies every parameter back to the CPU (for checkpoints and tests). */
  async read(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, e] of this.entries) {
      const n = e.shape.reduce((a, b) => a * b, 1);
      out[name] = { shape: [...e.shape], data: await this.ctx.readF32(e.buffer, n) };
    }
    return out;
  }

  /** Overwrites parameter values (loading a checkpoint); shapes must match. */
  write(name: string, data: Float32Array): void {
    const e = this.entries.get(name);
    if (!e) throw new GraphError(`no parameter named ${name}`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new GraphError(`parameter ${name} has ${n} values, got ${data.length}`);
    this.ctx.write(e.buffer, data);
  }

  /** Releases every stored buffer. */
  destroy(): void {
    for (const e of this.entries.values()) this.ctx.release(e.buffer);
    this.entries.clear();
  }
}

function seedFor(seed: number, name: string): number {
  let h = 2166136261 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function initialValues(n: number, init: Init, seed: number): Float32Array {
  const out = new Float32Array(n);
  const rand = mulberry32(seed);
  const gauss = () => {
    const u = 1 - rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
  switch (init.kind) {
    case 'zeros': break;
    case 'const': out.fill(init.value); break;
    case 'normal': for (let i = 0; i < n; i++) out[i] = gauss() * init.std; break;
    case 'truncated_normal':
      for (let i = 0; i < n; i++) {
        let v: number;
        do v = gauss(); while (Math.abs(v) > 2);
        out[i] = v * init.std;
      }
      break;
    case 'uniform': for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * init.limit; break;
    case 'glorot_uniform': {
      const limit = Math.sqrt(6 / (init.fanIn + init.fanOut));
      for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * limit;
      break;
    }
  }
  return out;
}
