import { BufferUsage, MapMode } from './flags.js';
import { Kernel, type KernelConstants } from './kernel.js';
import { OperandTextures } from './operand-textures.js';

/** Options for {@link GpuContext.fromDevice}. */
export interface ContextOptions {
  /** Human-readable adapter description, shown in logs and benchmark tables. */
  adapterDescription?: string;
  /**
   * What was set up about a software adapter that changes its speed (e.g. "LP_NUM_THREADS=6"):
   * tuning results are kept per adapter and these settings (GpuContext.tuningKey). Ignored on a GPU.
   */
  softwareSettings?: string;
  /** True when the context created the device and so may destroy it. */
  ownsDevice?: boolean;
  /**
   * How the host waits for the GPU: runs `start` (a mapAsync, onSubmittedWorkDone) and resolves
   * with it. The default just awaits; Node contexts use gentleWait (see src/gpu/gentle-wait.ts).
   */
  wait?: <T>(start: () => Promise<T>) => Promise<T>;
  /**
   * Which matmul kernel the engine uses where it has a choice: 'auto' (default) picks by adapter
   * (src/kernels/matmul.ts matmulKernelFor), 'subgroup' keeps the kernel built for software
   * adapters, 'tiled' the shared-memory kernel built for GPUs. For comparisons.
   */
  matmulKernel?: MatmulKernelChoice;
  /**
   * The WGSL language features of the GPU object the device came from
   * (`navigator.gpu.wgslLanguageFeatures`), where that is not the page's `navigator.gpu`. Default:
   * read from `navigator.gpu` where there is one; with none to ask, taken to be Dawn's.
   */
  wgslLanguageFeatures?: ReadonlySet<string>;
}

/** See ContextOptions.matmulKernel. */
export type MatmulKernelChoice = 'auto' | 'subgroup' | 'tiled';

interface InternalOptions extends ContextOptions {
  /** The GPU object the device came from: dawn.node tears the instance down if it is collected. */
  gpu?: GPU;
}

/** An error raised by the GPU (validation, out-of-memory, internal) with the context it happened in. */
export class GpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuError';
  }
}

/**
 * Everything the engine does goes through a context: the device, the buffers it made,
 * the compiled kernels. There is no global device, so several contexts (or a host
 * application's own WebGPU work) can share one process or one device.
 */
export class GpuContext {
  readonly device: GPUDevice;
  readonly adapterDescription: string;
  /** True when the device was created with 'timestamp-query'. */
  readonly hasTimestamps: boolean;
  readonly ownsDevice: boolean;
  /** See ContextOptions.matmulKernel. */
  readonly matmulKernel: MatmulKernelChoice;
  /**
   * Whether this WGSL has read-only storage textures (the language feature
   * readonly_and_readwrite_storage_textures), which the subgroup matmul kernel declares (see
   * ContextOptions.wgslLanguageFeatures).
   */
  readonly readOnlyStorageTextures: boolean;
  /**
   * Whether the adapter runs kernels on the CPU (lavapipe/llvmpipe, SwiftShader), the cores the
   * host uses too.
   */
  readonly softwareAdapter: boolean;
  /**
   * What tuning results are kept under: the adapter's description, and on a software adapter the
   * settings that change its speed (ContextOptions.softwareSettings).
   */
  readonly tuningKey: string;
  private readonly buffers = new Set<GPUBuffer>();
  /** Each buffer with a mapRead in flight, and a promise that resolves when that map settles. */
  private readonly mapsInFlight = new Map<GPUBuffer, Promise<void>>();
  private readonly kernels = new Map<string, Kernel>();
  private readonly uncaptured: string[] = [];
  private lost: string | undefined;
  /** Resolves (never rejects) with the reason when the device is lost; a read-back races it so it cannot hang. */
  private readonly lostReason: Promise<string>;
  private destroyed = false;
  private gpu: GPU | undefined;
  private readonly waitHook: (<T>(start: () => Promise<T>) => Promise<T>) | undefined;

  private constructor(device: GPUDevice, opts: InternalOptions) {
    this.gpu = opts.gpu;
    this.waitHook = opts.wait;
    this.device = device;
    this.adapterDescription = opts.adapterDescription ?? describeAdapterInfo((device as { adapterInfo?: GPUAdapterInfo }).adapterInfo);
    this.softwareAdapter = /llvmpipe|lavapipe|swiftshader|software/i.test(this.adapterDescription);
    this.tuningKey = this.softwareAdapter && opts.softwareSettings ? `${this.adapterDescription} (${opts.softwareSettings})` : this.adapterDescription;
    this.hasTimestamps = device.features.has('timestamp-query');
    this.ownsDevice = opts.ownsDevice ?? false;
    this.matmulKernel = opts.matmulKernel ?? 'auto';
    const wgslFeatures = opts.wgslLanguageFeatures ?? (opts.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu)?.wgslLanguageFeatures;
    this.readOnlyStorageTextures = wgslFeatures?.has('readonly_and_readwrite_storage_textures') ?? true;
    device.addEventListener?.('uncapturederror', (ev: Event) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.uncaptured.push(err?.message ?? String(err));
    });
    this.lostReason = device.lost.then((info) => {
      const reason = `${info.reason}: ${info.message}`;
      if (!this.destroyed) this.lost = reason;
      for (const wake of this.lostWaiters) wake(reason);
      this.lostWaiters.clear();
      return reason;
    });
  }

  /**
   * Reads in flight that want to hear of a loss. Each read races its own short-lived promise, woken
   * from here: racing `lostReason` itself would add a reaction to that promise per read, which it
   * keeps until the device is lost (about 1 KB of memory per read, for the whole run).
   */
  private readonly lostWaiters = new Set<(reason: string) => void>();

  /** A promise that resolves with the reason if the device is lost before `release` is called. */
  private lostWhile(): { lost: Promise<{ lost: string }>; release: () => void } {
    let wake!: (reason: string) => void;
    const lost = new Promise<{ lost: string }>((resolve) => { wake = (reason) => resolve({ lost: reason }); });
    if (this.lost !== undefined) wake(this.lost);
    else this.lostWaiters.add(wake);
    return { lost, release: () => this.lostWaiters.delete(wake) };
  }

  /** Wraps a device the caller already has (a browser page, a host app, a test). */
  static fromDevice(device: GPUDevice, opts: ContextOptions = {}): GpuContext {
    return new GpuContext(device, opts);
  }

  /**
   * Requests an adapter and device from a `GPU` object (`navigator.gpu` in a browser,
   * or `create()` from the `webgpu` package in Node), asking for the adapter's full
   * limits and for 'timestamp-query' when it is offered.
   */
  static async request(gpu: GPU | undefined, opts: { powerPreference?: GPUPowerPreference; noTimestamps?: boolean; wait?: ContextOptions['wait']; matmulKernel?: MatmulKernelChoice; softwareSettings?: string } = {}): Promise<GpuContext> {
    if (!gpu) throw new GpuError('WebGPU is not available here (no navigator.gpu). Use a browser with WebGPU enabled, or Node with the "webgpu" package.');
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) {
      // The fix differs: a page cannot install drivers, a Node process on a GPU-less box can.
      throw new GpuError(typeof document !== 'undefined'
        ? 'No WebGPU adapter found: this browser has WebGPU but offers no adapter (GPU blocklisted or WebGPU disabled). See chrome://gpu, or start Chromium with --enable-unsafe-webgpu'
        : 'No WebGPU adapter found. On a Linux machine without a GPU, install Mesa lavapipe from Debian bookworm-backports: sudo bash tools/setup-webgpu.sh');
    }
    const requiredFeatures: GPUFeatureName[] = [];
    if (!opts.noTimestamps && adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
    const requiredLimits: Record<string, number> = {};
    for (const name of LIMITS_WE_USE) {
      const v = (adapter.limits as unknown as Record<string, number>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'webgpu-train' });
    return new GpuContext(device, { adapterDescription: describeAdapterInfo(adapter.info), ownsDevice: true, gpu, wait: opts.wait, matmulKernel: opts.matmulKernel, softwareSettings: opts.softwareSettings });
  }

  /** Starts a GPU wait (`start` calls mapAsync or onSubmittedWorkDone) the way this context waits (ContextOptions.wait). */
  wait<T>(start: () => Promise<T>): Promise<T> {
    return this.waitHook ? this.waitHook(start) : start();
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  private readonly extraShaders = new Map<string, string>();

  /** Adds a WGSL shader of the caller's under `name`, for `kernel(name, ...)` (an app's own kernels). */
  defineShader(name: string, source: string): void {
    if (this.extraShaders.has(name)) throw new GpuError(`a shader named ${name} is already defined on this context`);
    this.extraShaders.set(name, source);
  }

  /** Compiles (once) and returns the kernel for a shader file's entry point with the given override constants. */
  kernel(file: string, entry = 'main', constants: KernelConstants = {}): Kernel {
    const key = `${file}#${entry}#${JSON.stringify(Object.entries(constants).sort())}`;
    let k = this.kernels.get(key);
    if (!k) {
      k = new Kernel(this, file, entry, constants, this.extraShaders.get(file));
      this.kernels.set(key, k);
    }
    return k;
  }

  /** Number of distinct compiled kernels (pipelines) made by this context. */
  get kernelCount(): number {
    return this.kernels.size;
  }

  private readonly dummies: GPUBuffer[] = [];

  /** Textures mirroring buffer ranges that kernels read as textures (see operand-textures.ts). */
  get operandTextures(): OperandTextures {
    this.textures ??= new OperandTextures(this.device);
    return this.textures;
  }

  private textures: OperandTextures | undefined;

  /**
   * A small storage buffer for bindings a kernel variant declares but does not use. Unused
   * bindings of one dispatch that may be written need distinct ones (`index` 0, 1, …): WebGPU
   * refuses a buffer bound both writable and read-only in one dispatch.
   */
  dummyBuffer(index = 0): GPUBuffer {
    if (!this.dummies[index]) {
      // Shared by every graph of this context: kept out of any collectBuffers() scope.
      const scopes = this.collecting;
      this.collecting = [];
      this.dummies[index] = this.storage(16, `unused binding ${index}`);
      this.collecting = scopes;
    }
    return this.dummies[index];
  }

  private collecting: GPUBuffer[][] = [];

  /**
   * Runs `fn` and returns every buffer created through this context meanwhile (uniforms and
   * scratch made by kernels' prepare functions), so their owner can release them later.
   */
  collectBuffers(fn: () => void): GPUBuffer[] {
    const list: GPUBuffer[] = [];
    this.collecting.push(list);
    try {
      fn();
    } finally {
      this.collecting.pop();
    }
    return list;
  }

  /** Runs `fn`; if it throws, releases every buffer it made through this context, then rethrows. */
  releaseOnThrow<T>(fn: () => T): T {
    let result!: T;
    const list: GPUBuffer[] = [];
    this.collecting.push(list);
    try {
      result = fn();
    } catch (e) {
      for (const b of list) this.release(b);
      throw e;
    } finally {
      this.collecting.splice(this.collecting.indexOf(list), 1);
    }
    return result;
  }

  /** A GPU buffer of at least `size` bytes (rounded up to 16) with the given usage flags (BufferUsage), counted in liveBuffers until released. */
  createBuffer(size: number, usage: number, label?: string): GPUBuffer {
    this.assertUsable();
    // Zero-sized bindings are invalid, and kernels may view a buffer as array<vec4f>: round to 16 bytes.
    const buf = this.device.createBuffer({ size: Math.max(16, align(size, 16)), usage, label });
    this.buffers.add(buf);
    for (const list of this.collecting) list.push(buf);
    return buf;
  }

  /** A storage buffer usable as a kernel input/output and as a copy source/destination. */
  storage(size: number, label?: string): GPUBuffer {
    return this.createBuffer(size, BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, label);
  }

  /** A storage buffer filled with `data`. */
  upload(data: Float32Array | Uint32Array | Int32Array, label?: string): GPUBuffer {
    const buf = this.storage(data.byteLength, label);
    this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  }

  /** Queues a write of `data` into `buf` at `offsetBytes`. */
  write(buf: GPUBuffer, data: ArrayBufferView, offsetBytes = 0): void {
    this.device.queue.writeBuffer(buf, offsetBytes, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Fills a float buffer with NaN so that any element a kernel fails to write is caught by a test. */
  poison(buf: GPUBuffer, floats = buf.size / 4): void {
    this.write(buf, new Float32Array(floats).fill(NaN));
  }

  /** Copies `bytes` of a buffer back to the CPU. */
  async readBytes(src: GPUBuffer, bytes = src.size, offset = 0): Promise<ArrayBuffer> {
    this.assertUsable();
    const size = align(bytes, 4);
    const staging = this.createBuffer(size, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'readback');
    try {
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(src, offset, staging, 0, size);
      this.device.queue.submit([enc.finish()]);
      await this.mapRead(staging, 0, size, 'reading a buffer back');
      return staging.getMappedRange(0, size).slice(0, bytes);
    } finally {
      this.release(staging);
    }
  }

  /** Reads `count` f32 values of `src` from element `offsetElems` back to the CPU. */
  async readF32(src: GPUBuffer, count = src.size / 4, offsetElems = 0): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(src, count * 4, offsetElems * 4));
  }

  /** Reads `count` u32 values of `src` from element `offsetElems` back to the CPU. */
  async readU32(src: GPUBuffer, count = src.size / 4, offsetElems = 0): Promise<Uint32Array> {
    return new Uint32Array(await this.readBytes(src, count * 4, offsetElems * 4));
  }

  /** Runs `fn` in validation and out-of-memory error scopes and throws a GpuError naming `what` if either fired. */
  async checked<T>(what: string, fn: () => T): Promise<T> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T;
    try {
      result = fn();
    } finally {
      const validation = await this.device.popErrorScope();
      const oom = await this.device.popErrorScope();
      const err = validation ?? oom;
      if (err) throw new GpuError(`${what}: ${err.message}`);
    }
    return result;
  }

  /**
   * `buf.mapAsync(READ, offset, size)` that cannot hang on a lost device: it races the map against
   * `device.lost`, and any failure becomes a GpuError naming `what` (and the loss, if that was it).
   */
  async mapRead(buf: GPUBuffer, offset: number, size: number, what: string): Promise<void> {
    this.assertUsable(what);
    const map = this.wait(() => buf.mapAsync(MapMode.READ, offset, size)).then(() => 'mapped' as const);
    // A loss can end this wait before the map settles: the buffer must outlive the map (see destroyOnceSettled).
    const settled = map.then(() => undefined, () => undefined);
    this.mapsInFlight.set(buf, settled);
    void settled.then(() => { if (this.mapsInFlight.get(buf) === settled) this.mapsInFlight.delete(buf); });
    let outcome: 'mapped' | { lost: string };
    try {
      const loss = this.lostWhile();
      try {
        outcome = await Promise.race([map, loss.lost]);
      } finally {
        loss.release();
      }
    } catch (e) {
      // Give a loss that caused the failure the chance to be reported as such.
      const reason = await Promise.race([this.lostReason, new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
      if (reason !== undefined && !this.destroyed) throw new GpuError(`${what}: the GPU device was lost (${reason})`);
      this.throwIfFailed(what);
      throw new GpuError(`${what}: mapping the read-back buffer failed (${(e as Error)?.message ?? String(e)})`);
    }
    if (outcome !== 'mapped') {
      if (this.destroyed) throw new GpuError(`${what}: this GpuContext was destroyed while waiting for the GPU`);
      throw new GpuError(`${what}: the GPU device was lost (${outcome.lost})`);
    }
  }

  /** Throws a GpuError naming `context` if the device was lost (or this context destroyed). */
  throwIfLost(context = 'GPU'): void {
    this.assertUsable(context);
  }

  /** Throws if the device reported an uncaptured error or was lost since the last call. */
  throwIfFailed(context = 'GPU'): void {
    if (this.lost) throw new GpuError(`${context}: the GPU device was lost (${this.lost})`);
    if (this.uncaptured.length) {
      const msgs = this.uncaptured.splice(0);
      throw new GpuError(`${context}: ${msgs.join('\n')}`);
    }
  }

  get deviceLost(): string | undefined {
    return this.lost;
  }

  /** Buffers made through this context and not yet released. */
  get liveBuffers(): number {
    return this.buffers.size;
  }

  /** Destroys a buffer made by createBuffer and takes it off the live-buffer total. */
  release(buf: GPUBuffer): void {
    if (this.buffers.delete(buf)) {
      this.textures?.release(buf);
      this.destroyOnceSettled(buf);
    }
  }

  /**
   * Destroys `buf` now or, while a mapRead of it is in flight, once that map settles: Dawn corrupts
   * its own memory (an abort, often at exit) when a buffer whose map is still pending is destroyed
   * after the device was lost.
   */
  private destroyOnceSettled(buf: GPUBuffer): void {
    const map = this.mapsInFlight.get(buf);
    if (map) void map.then(() => buf.destroy());
    else buf.destroy();
  }

  /**
   * Releases every buffer this context made and, when the context created the device,
   * destroys the device too (dawn.node keeps the process alive while a device lives).
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.textures?.destroy();
    for (const b of this.buffers) this.destroyOnceSettled(b);
    this.buffers.clear();
    this.kernels.clear();
    if (this.ownsDevice) this.device.destroy();
    // Letting dawn.node's instance go lets the process exit; not before the maps in flight settle.
    const maps = [...this.mapsInFlight.values()];
    if (maps.length === 0) this.gpu = undefined;
    else void Promise.all(maps).then(() => { this.gpu = undefined; });
  }

  private assertUsable(context?: string): void {
    const at = context ? `${context}: ` : '';
    if (this.destroyed) throw new GpuError(`${at}this GpuContext was destroyed`);
    if (this.lost) throw new GpuError(`${at}the GPU device was lost (${this.lost})`);
  }
}

/** Limits we raise from the defaults to what the adapter offers. */
const LIMITS_WE_USE = [
  'maxStorageBuffersPerShaderStage',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxBindingsPerBindGroup',
  'maxUniformBuffersPerShaderStage',
];

/** A one-line description of a GPU adapter (vendor, architecture, device, description), for logs. */
export function describeAdapterInfo(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length);
  return parts.length ? [...new Set(parts)].join(' / ') : 'unknown adapter';
}

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
