// Float64 CPU twins of shaders/activation.wgsl.
import { activate, type Act } from '../support/cpu.js';

export function activationRef(x: ArrayLike<number>, act: Act): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = activate(x[i], act);
  return y;
}

/** f'(x) written through the forward output y = f(x). */
export function activationDerivFromOutput(y: number, act: Act): number {
  switch (act) {
    case 'relu': return y > 0 ? 1 : 0;
    case 'sigmoid': return y * (1 - y);
    case 'tanh': return 1 - y * y;
    default: return 1;
  }
}

/** dx = dy ⊙ f'(x) from the forward output y (+ dx0 when accumulating). */
export function activationBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, act: Act, dx0?: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) dx[i] = dy[i] * activationDerivFromOutput(y[i], act) + (dx0 ? dx0[i] : 0);
  return dx;
}

/** y[i,j] = f(x[i,j] + b[j]). */
export function biasAddRef(x: ArrayLike<number>, b: ArrayLike<number>, rows: number, cols: number, act: Act = 'none'): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) y[i * cols + j] = activate(x[i * cols + j] + b[j], act);
  return y;
}
