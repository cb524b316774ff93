// Operands read as textures. On llvmpipe (a CPU adapter) a storage-buffer load inside a loop runs as
// a loop over the SIMD lanes with a bounds check per float, while a texel load is one vectorized
// gather. So on software adapters a matmul reads its operands from rgba32float textures (read-only
// storage textures: llvmpipe loads their texels more cheaply than a sampled texture's) holding the
// same floats, copied from the buffers just before the dispatch (src/gpu/dispatch.ts
// DispatchEncoder), and only when the buffer was written since the last copy.
import { BufferUsage, TextureUsage } from './flags.js';

/** Texels (4 floats each) per row of an operand texture: a power of 2, 16 KiB a row. Matches the shaders' TEX_WIDTH. */
export const OPERAND_TEXTURE_WIDTH = 1024;

/** Texels (4 floats each) per row of a panel: each layer of a panelled texture holds 128 columns. Matches the shader's PANEL_TEXELS. */
export const PANEL_TEXELS = 32;

/** A matrix laid out as panels: its rows, and the floats from one row's start to the next's. */
export interface PanelLayout {
  rows: number;
  rowFloats: number;
}

/** One copy of a buffer range into an operand texture, encoded before the dispatch that reads it. */
export interface TextureCopy {
  source: GPUBuffer;
  /** Byte offset of the first float (a multiple of 16). */
  offset: number;
  /** Texels in all; with panels, texels per matrix row. */
  texels: number;
  texture: GPUTexture;
  /** Set where the texture holds a matrix as panels (OperandTextures.panels), one layer each. */
  panels?: PanelLayout;
}

/** A texture holding a buffer range: the copy that fills it, and the view a kernel binds ('2d', or '2d-array' for panels). */
export interface OperandTexture {
  copy: TextureCopy;
  view: GPUTextureView;
}

/** The operand textures of one device, one per distinct buffer range; they live as long as their buffer. */
export class OperandTextures {
  private readonly bySource = new Map<GPUBuffer, Map<string, OperandTexture>>();
  private dummy: GPUTexture | undefined;
  private dummyArray: GPUTexture | undefined;

  constructor(private readonly device: GPUDevice) {}

  /**
   * Whether `floats` floats of `buffer` from float `offset` can be a texture. Not where the offset is
   * off a 16-byte boundary, the range runs past the buffer once rounded up to whole texels, it needs
   * more rows than the device allows, or the buffer cannot be copied from.
   */
  fits(buffer: GPUBuffer, offset: number, floats: number): boolean {
    const texels = Math.ceil(floats / 4);
    return offset % 4 === 0 && (offset + 4 * texels) * 4 <= buffer.size && (buffer.usage & BufferUsage.COPY_SRC) !== 0
      && Math.ceil(texels / OPERAND_TEXTURE_WIDTH) <= this.device.limits.maxTextureDimension2D;
  }

  /** The texture holding that range (made on first use), or undefined where it does not fit. */
  get(buffer: GPUBuffer, offset: number, floats: number): OperandTexture | undefined {
    if (!this.fits(buffer, offset, floats)) return undefined;
    const texels = Math.ceil(floats / 4);
    const rows = Math.ceil(texels / OPERAND_TEXTURE_WIDTH);
    return this.cached(buffer, `${offset}:${texels}`, () => {
      const texture = this.device.createTexture({
        size: [OPERAND_TEXTURE_WIDTH, rows],
        format: 'rgba32float',
        usage: TextureUsage.STORAGE_BINDING | TextureUsage.COPY_DST,
        label: `${buffer.label || 'buffer'} as texture (${texels} texels from float ${offset})`,
      });
      return { copy: { source: buffer, offset: offset * 4, texels, texture }, view: texture.createView() };
    });
  }

  /**
   * Whether a [rows, cols] matrix at float `offset` of `buffer`, `rowFloats` floats from one row's
   * start to the next, can be a panelled texture: whole texels (cols and offset multiples of 4), rows
   * a multiple of 256 bytes apart (as a buffer-to-texture copy wants), no more rows than a texture's
   * height or panels than its layers, the matrix inside the buffer, and the buffer copyable.
   */
  fitsPanels(buffer: GPUBuffer, offset: number, rows: number, cols: number, rowFloats: number): boolean {
    const limits = this.device.limits;
    return offset % 4 === 0 && cols % 4 === 0 && (rowFloats * 4) % 256 === 0 && rowFloats >= cols
      && rows <= limits.maxTextureDimension2D && Math.ceil(cols / (4 * PANEL_TEXELS)) <= limits.maxTextureArrayLayers
      && (offset + (rows - 1) * rowFloats + cols) * 4 <= buffer.size && (buffer.usage & BufferUsage.COPY_SRC) !== 0;
  }

  /**
   * The matrix as panels (made on first use; see fitsPanels): layer p holds columns 128p..128p+127
   * of every row, so that the rows of a column block lie together. Undefined where it does not fit.
   */
  panels(buffer: GPUBuffer, offset: number, rows: number, cols: number, rowFloats: number): OperandTexture | undefined {
    if (!this.fitsPanels(buffer, offset, rows, cols, rowFloats)) return undefined;
    return this.cached(buffer, `panels ${offset}:${rows}x${cols}/${rowFloats}`, () => {
      const texture = this.device.createTexture({
        size: [PANEL_TEXELS, rows, Math.ceil(cols / (4 * PANEL_TEXELS))],
        format: 'rgba32float',
        usage: TextureUsage.STORAGE_BINDING | TextureUsage.COPY_DST,
        label: `${buffer.label || 'buffer'} as panels ([${rows}, ${cols}] from float ${offset})`,
      });
      return {
        copy: { source: buffer, offset: offset * 4, texels: cols / 4, texture, panels: { rows, rowFloats } },
        view: texture.createView({ dimension: '2d-array' }),
      };
    });
  }

  /** The texture of `buffer` under `key`, made by `make` on first use. */
  private cached(buffer: GPUBuffer, key: string, make: () => OperandTexture): OperandTexture {
    let ranges = this.bySource.get(buffer);
    if (!ranges) this.bySource.set(buffer, ranges = new Map());
    let entry = ranges.get(key);
    if (!entry) ranges.set(key, entry = make());
    return entry;
  }

  /** A 1x1 texture for a texture binding a kernel variant declares but does not read. */
  dummyView(): GPUTextureView {
    this.dummy ??= this.device.createTexture({ size: [1, 1], format: 'rgba32float', usage: TextureUsage.STORAGE_BINDING, label: 'unused texture binding' });
    return this.dummy.createView();
  }

  /** The same for a texture_storage_2d_array binding. */
  dummyArrayView(): GPUTextureView {
    this.dummyArray ??= this.device.createTexture({ size: [1, 1, 1], format: 'rgba32float', usage: TextureUsage.STORAGE_BINDING, label: 'unused texture array binding' });
    return this.dummyArray.createView({ dimension: '2d-array' });
  }

  /** Destroys the textures of a buffer that is being destroyed. */
  release(buffer: GPUBuffer): void {
    for (const { copy } of this.bySource.get(buffer)?.values() ?? []) copy.texture.destroy();
    this.bySource.delete(buffer);
  }

  /** Destroys every texture, the dummy too (a context on the caller's device leaves nothing behind). */
  destroy(): void {
    for (const buffer of [...this.bySource.keys()]) this.release(buffer);
    this.dummy?.destroy();
    this.dummyArray?.destroy();
    this.dummy = undefined;
    this.dummyArray = undefined;
  }
}

/** Encodes one copy: whole rows of texels, then the last, partial row; or, for panels, one copy per panel. */
export function encodeTextureCopy(encoder: GPUCommandEncoder, copy: TextureCopy): void {
  if (copy.panels) {
    const { rows, rowFloats } = copy.panels;
    for (let layer = 0; layer * PANEL_TEXELS < copy.texels; layer++) {
      const width = Math.min(PANEL_TEXELS, copy.texels - layer * PANEL_TEXELS);
      encoder.copyBufferToTexture({ buffer: copy.source, offset: copy.offset + layer * PANEL_TEXELS * 16, bytesPerRow: rowFloats * 4, rowsPerImage: rows },
        { texture: copy.texture, origin: [0, 0, layer] }, [width, rows, 1]);
    }
    return;
  }
  const rowBytes = OPERAND_TEXTURE_WIDTH * 16;
  const fullRows = Math.floor(copy.texels / OPERAND_TEXTURE_WIDTH);
  const rest = copy.texels - fullRows * OPERAND_TEXTURE_WIDTH;
  if (fullRows > 0) {
    encoder.copyBufferToTexture({ buffer: copy.source, offset: copy.offset, bytesPerRow: rowBytes }, { texture: copy.texture }, [OPERAND_TEXTURE_WIDTH, fullRows]);
  }
  if (rest > 0) {
    encoder.copyBufferToTexture({ buffer: copy.source, offset: copy.offset + fullRows * rowBytes, bytesPerRow: rowBytes },
      { texture: copy.texture, origin: [0, fullRows] }, [rest, 1]);
  }
}
