// The training loop's step counter, kept on the GPU: counter[0] += 1, encoded once per
// training step (after every kernel that reads the counter: dropout, Adam), where the loss's
// kernel does not advance it (softmax_xent.wgsl mean_step, rows_mean_step). Kernels read the
// step from this buffer, so a recorded step never needs re-recording or uniform uploads.

@group(0) @binding(0) var<storage, read_write> counter: array<u32>;

@compute @workgroup_size(1)
fn main() {
  counter[0] = counter[0] + 1u;
}
