// WebGPU's numeric flag values, fixed by the specification. Kept here so library code
// does not depend on the GPUBufferUsage/GPUMapMode globals, which dawn.node does not install.
/** WebGPU's GPUBufferUsage flags as plain numbers, usable where the global is missing (Node). */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  INDEX: 0x0010,
  VERTEX: 0x0020,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;

/** WebGPU's GPUMapMode flags as plain numbers. */
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

export const ShaderStage = { VERTEX: 0x1, FRAGMENT: 0x2, COMPUTE: 0x4 } as const;

/** WebGPU's GPUTextureUsage flags as plain numbers. */
export const TextureUsage = { COPY_SRC: 0x01, COPY_DST: 0x02, TEXTURE_BINDING: 0x04, STORAGE_BINDING: 0x08, RENDER_ATTACHMENT: 0x10 } as const;
