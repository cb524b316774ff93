// CPU twin of shaders/argmax.wgsl, and the scores and labels its tests draw.
import { randomArray } from '../support/cpu.js';

/** Index of the first maximum of each row of x [B, C]. */
export function argmaxRef(x: ArrayLike<number>, B: number, C: number): Uint32Array {
  const out = new Uint32Array(B);
  for (let r = 0; r < B; r++) {
    let best = x[r * C];
    let idx = 0;
    for (let k = 1; k < C; k++) {
      if (x[r * C + k] > best) { best = x[r * C + k]; idx = k; }
    }
    out[r] = idx;
  }
  return out;
}

export function countCorrect(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) n++;
  return n;
}

/**
 * Random scores [B, C] with ties, for the first-max rule: in every third row the max is copied to
 * the last column, and every fifth row is constant.
 */
export function scoresWithTies(B: number, C: number, rand: () => number): Float32Array {
  const x = randomArray(B * C, rand, 3);
  for (let r = 0; r < B; r++) {
    const row = x.subarray(r * C, (r + 1) * C);
    if (r % 5 === 4) row.fill(0.5);
    else if (r % 3 === 0 && C > 1) row[C - 1] = row[argmaxRef(row, 1, C)[0]];
  }
  return x;
}

/** Labels of which about half are the predictions, so that a correct count is neither 0 nor B. */
export function labelsNear(pred: Uint32Array, C: number, rand: () => number): Uint32Array {
  return pred.map((p) => (rand() < 0.5 ? p : Math.min(C - 1, Math.floor(rand() * C))));
}
