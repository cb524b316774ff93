// CPU twins of shaders/dropout.wgsl: Philox4x32-10 (as in Random123) and inverted dropout.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** [hi, lo] of the 64-bit product of two u32, exactly (doubles hold 48-bit partial products). */
function mulhilo(a: number, b: number): [number, number] {
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const pl = a * bl;  // < 2^48
  const ph = a * bh;  // < 2^48
  const hi = Math.floor(ph / 65536) + Math.floor(((ph % 65536) * 65536 + pl) / 4294967296);
  return [hi >>> 0, Math.imul(a, b) >>> 0];
}

/** Philox4x32-10 of a 4-word counter and a 2-word key. */
export function philox4x32_10(ctr: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr.map((v) => v >>> 0);
  let [k0, k1] = key.map((v) => v >>> 0);
  for (let r = 0; r < 10; r++) {
    if (r > 0) { k0 = (k0 + W0) >>> 0; k1 = (k1 + W1) >>> 0; }
    const [h0, l0] = mulhilo(M0, c0);
    const [h1, l1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(h1 ^ c1 ^ k0) >>> 0, l1, (h0 ^ c3 ^ k1) >>> 0, l0];
  }
  return [c0, c1, c2, c3];
}

/** The dropout mask (1 kept, 0 dropped) the GPU draws for n elements at a step. */
export function dropoutMaskRef(n: number, keepThreshold: number, seed: number, stream: number, step: number): Float32Array {
  const mask = new Float32Array(n);
  for (let g = 0; g * 4 < n; g++) {
    const r = philox4x32_10([g, step, 0, 0], [seed, stream]);
    for (let l = 0; l < 4 && 4 * g + l < n; l++) mask[4 * g + l] = r[l] >>> 8 < keepThreshold ? 1 : 0;
  }
  return mask;
}

/** y = x · mask / keepProb. */
export function dropoutRef(x: ArrayLike<number>, mask: ArrayLike<number>, keepProb: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = (x[i] * mask[i]) / keepProb;
  return y;
}

/** dx = dy · mask / keepProb (+ dx0). */
export function dropoutBackwardRef(dy: ArrayLike<number>, mask: ArrayLike<number>, keepProb: number, dx0?: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) dx[i] = (dy[i] * mask[i]) / keepProb + (dx0 ? dx0[i] : 0);
  return dx;
}
