// Float64 CPU twins of global average pooling (src/kernels/global-pool.ts), written directly
// from the definition rather than through the general pooling twin.

/** y[n, c] = mean over h, w of x[n, h, w, c] for x [N, H, W, C]. */
export function globalAvgPoolRef(x: ArrayLike<number>, N: number, H: number, W: number, C: number): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) y[n * C + c] += x[(n * H * W + p) * C + c];
    for (let c = 0; c < C; c++) y[n * C + c] /= H * W;
  }
  return y;
}

/** dx[n, h, w, c] = dy[n, c] / (H·W) (+ dx0 when accumulating). */
export function globalAvgPoolBackwardRef(dy: ArrayLike<number>, N: number, H: number, W: number, C: number, dx0?: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < C; c++) {
        const i = (n * H * W + p) * C + c;
        dx[i] = dy[n * C + c] / (H * W) + (dx0 ? dx0[i] : 0);
      }
    }
  }
  return dx;
}
