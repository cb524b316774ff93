import { WgslReflect, ResourceType, type VariableInfo, type StructInfo, type TemplateInfo } from 'wgsl_reflect/wgsl_reflect.module.js';
import { BufferUsage, ShaderStage } from './flags.js';
import { PRELUDE_FILE, shaderOwnLines, shaderSources } from './shader-sources.generated.js';
import { GpuError, type GpuContext } from './context.js';

/** Values for a shader's `override` declarations. */
export type KernelConstants = Record<string, number | boolean>;

/** A buffer binding: a whole buffer or a byte range of one. */
export type BufferBinding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

/** What Kernel.bind takes for a binding: a buffer binding, or a view for a read-only storage texture. */
export type BindingResource = BufferBinding | GPUTextureView;

interface BindingInfo {
  name: string;
  binding: number;
  kind: 'uniform' | 'read-only-storage' | 'storage' | 'texture';
  info: VariableInfo;
  /** kind 'texture': its texel format and view dimension, as the shader declares them. */
  format?: GPUTextureFormat;
  viewDimension?: GPUTextureViewDimension;
}

/** The read-only storage textures a kernel may bind, by WGSL type, and the view each takes. */
const TEXTURE_VIEW_DIMENSIONS: Record<string, GPUTextureViewDimension> = { texture_storage_2d: '2d', texture_storage_2d_array: '2d-array' };

/** One buffer of a bind group, as Kernel.bind bound it: the shader's variable name and its access. */
export interface BoundBuffer {
  name: string;
  kind: 'uniform' | 'read-only-storage' | 'storage';
  buffer: GPUBuffer;
  offset: number;
  /** Bytes bound; undefined: to the end of the buffer. */
  size: number | undefined;
}

/** What each bind group made by Kernel.bind holds (WebGPU cannot be asked): for checks of what a dispatch touches. */
const boundByGroup = new WeakMap<GPUBindGroup, readonly BoundBuffer[]>();

/** The buffers bound in a bind group made by Kernel.bind (undefined for one made elsewhere). */
export function bindGroupBuffers(group: GPUBindGroup): readonly BoundBuffer[] | undefined {
  return boundByGroup.get(group);
}

/** Reflection is pure in the source text: cache it by the text. */
const reflectCache = new Map<string, WgslReflect>();

function reflectShader(file: string, src: string): WgslReflect {
  let r = reflectCache.get(src);
  if (!r) {
    try {
      r = new WgslReflect(src);
    } catch (e) {
      throw new GpuError(`shaders/${file}: wgsl_reflect could not parse it: ${(e as Error).message}`);
    }
    reflectCache.set(src, r);
  }
  return r;
}

/**
 * How many storage buffers an entry point of one of the engine's shaders binds, which a device
 * limits (maxStorageBuffersPerShaderStage: 8 unless the device was asked for more).
 */
export function entryStorageBuffers(file: string, entry: string): number {
  const fn = reflectShader(file, shaderSource(file)).entry.compute.find((f) => f.name === entry);
  if (!fn) throw new GpuError(`shaders/${file} has no @compute entry point named "${entry}"`);
  return fn.resources.filter((r) => r.resourceType === ResourceType.Storage).length;
}

/** The source of one of the engine's shaders (shaders/*.wgsl, embedded at build time). */
export function shaderSource(file: string): string {
  const src = shaderSources[file];
  if (src === undefined) throw new GpuError(`no shader named shaders/${file} (known: ${Object.keys(shaderSources).join(', ')})`);
  return src;
}

/** `shaders/FILE:LINE` of a line of an embedded source: lines past the shader's own are the prelude's. */
export function sourceLine(file: string, line: number): string {
  const own = shaderOwnLines[file];
  if (own === undefined || line <= own) return `shaders/${file}:${line}`;
  return `shaders/${PRELUDE_FILE}:${line - own}`;
}

/**
 * One compute entry point of one `.wgsl` file, compiled with fixed override constants.
 * The bind group layout comes from the shader itself (read by wgsl_reflect), so binding
 * numbers are never repeated in TypeScript: callers bind buffers by the shader's variable names.
 */
export class Kernel {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly workgroupSize: [number, number, number];
  readonly bindings: readonly BindingInfo[];
  /** Resolves when the shader compiled and the pipeline was created; rejects naming the file and line otherwise. */
  readonly ready: Promise<void>;
  readonly label: string;

  constructor(
    private readonly ctx: GpuContext,
    readonly file: string,
    readonly entry: string,
    readonly constants: KernelConstants,
    source = shaderSource(file),
  ) {
    this.label = `${file}:${entry}`;
    const reflect = reflectShader(file, source);
    const fn = reflect.entry.compute.find((f) => f.name === entry);
    if (!fn) throw new GpuError(`shaders/${file} has no @compute entry point named "${entry}"`);
    const declared = new Set(reflect.overrides.map((o) => o.name));
    for (const k of Object.keys(constants)) {
      if (!declared.has(k)) throw new GpuError(`shaders/${file} declares no override named "${k}" (it has: ${[...declared].join(', ') || 'none'})`);
    }
    this.workgroupSize = resolveWorkgroupSize(fn.attributes ?? [], constants, file, source);
    const bindings: BindingInfo[] = [];
    for (const r of fn.resources) {
      if (r.group !== 0) throw new GpuError(`shaders/${file}: binding ${r.name} uses @group(${r.group}); kernels use group 0 only`);
      let kind: BindingInfo['kind'];
      if (r.resourceType === ResourceType.Uniform) kind = 'uniform';
      else if (r.resourceType === ResourceType.Storage) kind = r.access === 'read' ? 'read-only-storage' : 'storage';
      else if (r.resourceType === ResourceType.StorageTexture && r.type.name in TEXTURE_VIEW_DIMENSIONS && r.access === 'read') kind = 'texture';
      else throw new GpuError(`shaders/${file}: binding ${r.name} is neither a buffer nor a texture_storage_2d<format, read> or texture_storage_2d_array<format, read>`);
      const texture = kind === 'texture'
        ? { format: (r.type as TemplateInfo).format?.name as GPUTextureFormat, viewDimension: TEXTURE_VIEW_DIMENSIONS[r.type.name] }
        : {};
      bindings.push({ name: r.name, binding: r.binding, kind, info: r, ...texture });
    }
    bindings.sort((a, b) => a.binding - b.binding);
    this.bindings = bindings;

    const device = ctx.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: source, label: file });
    this.layout = device.createBindGroupLayout({
      label: this.label,
      entries: bindings.map((b) => (b.kind === 'texture'
        ? { binding: b.binding, visibility: ShaderStage.COMPUTE, storageTexture: { access: 'read-only' as const, format: b.format!, viewDimension: b.viewDimension } }
        : { binding: b.binding, visibility: ShaderStage.COMPUTE, buffer: { type: b.kind } })),
    });
    this.pipeline = device.createComputePipeline({
      label: this.label,
      layout: device.createPipelineLayout({ bindGroupLayouts: [this.layout] }),
      compute: { module, entryPoint: entry, constants: Object.fromEntries(Object.entries(constants).map(([k, v]) => [k, Number(v)])) },
    });
    const scope = device.popErrorScope();
    this.ready = (async () => {
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length) {
        throw new GpuError(errors.map((m) => `${sourceLine(file, m.lineNum)}:${m.linePos}: error: ${m.message}`).join('\n'));
      }
      const err = await scope;
      if (err) throw new GpuError(`shaders/${file} (entry ${entry}, constants ${JSON.stringify(constants)}): ${err.message}`);
    })();
    // Rejections are reported through ctx.ready(); keep Node from flagging them as unhandled meanwhile.
    this.ready.catch(() => {});
  }

  /** Makes a bind group from buffers (and texture views) named as in the shader. Call at compile time, never per step. */
  bind(resources: Record<string, BindingResource>, label?: string): GPUBindGroup {
    const names = new Set(Object.keys(resources));
    const entries: GPUBindGroupEntry[] = [];
    const bound: BoundBuffer[] = [];
    for (const b of this.bindings) {
      const r = resources[b.name];
      if (!r) throw new GpuError(`${this.label}: missing buffer for binding "${b.name}" (needs: ${this.bindings.map((x) => x.name).join(', ')})`);
      names.delete(b.name);
      if (b.kind === 'texture') {
        entries.push({ binding: b.binding, resource: r as GPUTextureView });
        continue;
      }
      const resource = 'buffer' in r ? r : { buffer: r as GPUBuffer };
      entries.push({ binding: b.binding, resource });
      bound.push({ name: b.name, kind: b.kind, buffer: resource.buffer, offset: resource.offset ?? 0, size: resource.size });
    }
    if (names.size) throw new GpuError(`${this.label}: shader has no binding named ${[...names].join(', ')} (it has: ${this.bindings.map((x) => x.name).join(', ')})`);
    const group = this.ctx.device.createBindGroup({ layout: this.layout, entries, label: label ?? this.label });
    boundByGroup.set(group, bound);
    return group;
  }

  /**
   * Makes a uniform buffer for the shader's uniform struct from named values; the member
   * offsets and types come from the shader, so the layout is written once, in WGSL. `binding`
   * names the uniform where an entry point has more than one (default: the first).
   */
  params(values: Record<string, number>, label?: string, binding?: string): GPUBuffer {
    const u = this.bindings.find((b) => b.kind === 'uniform' && (binding === undefined || b.name === binding));
    if (!u) throw new GpuError(`${this.label} has no uniform binding${binding === undefined ? '' : ` named ${binding}`}`);
    const struct = u.info.type as StructInfo;
    if (!struct.members) throw new GpuError(`${this.label}: uniform ${u.name} is not a struct`);
    const bytes = new ArrayBuffer(Math.max(16, Math.ceil(struct.size / 16) * 16));
    const view = new DataView(bytes);
    const given = new Set(Object.keys(values));
    for (const m of struct.members) {
      const v = values[m.name];
      if (v === undefined) throw new GpuError(`${this.label}: no value for ${u.name}.${m.name}`);
      given.delete(m.name);
      switch (m.type.name) {
        case 'u32': view.setUint32(m.offset, v >>> 0, true); break;
        case 'i32': view.setInt32(m.offset, v | 0, true); break;
        case 'f32': view.setFloat32(m.offset, v, true); break;
        default: throw new GpuError(`${this.label}: ${u.name}.${m.name} has type ${m.type.name}; params() handles u32, i32 and f32`);
      }
    }
    if (given.size) throw new GpuError(`${this.label}: ${u.name} has no member ${[...given].join(', ')}`);
    const buf = this.ctx.createBuffer(bytes.byteLength, BufferUsage.UNIFORM | BufferUsage.COPY_DST, label ?? `${this.label} params`);
    this.ctx.device.queue.writeBuffer(buf, 0, bytes);
    return buf;
  }
}

function resolveWorkgroupSize(attrs: { name: string; value: unknown }[], constants: KernelConstants, file: string, source: string): [number, number, number] {
  const attr = attrs.find((a) => a.name === 'workgroup_size');
  if (!attr) throw new GpuError(`shaders/${file}: compute entry has no @workgroup_size`);
  const raw = Array.isArray(attr.value) ? attr.value : [attr.value];
  const dims = raw.map((v) => {
    const s = String(v).trim();
    if (/^\d+u?$/.test(s)) return parseInt(s, 10);
    if (s in constants) return Number(constants[s]);
    const m = new RegExp(`override\\s+${s}\\s*(?::\\s*\\w+)?\\s*=\\s*(\\d+)`).exec(source);
    if (m) return parseInt(m[1], 10);
    throw new GpuError(`shaders/${file}: cannot resolve workgroup size "${s}"`);
  });
  while (dims.length < 3) dims.push(1);
  return dims as [number, number, number];
}
