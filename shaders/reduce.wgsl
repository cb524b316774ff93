// Column sums: out[b*cols + j] (+)= sum of x[i*cols + j] over the rows i of block b,
// i.e. rows [b*blockRows, min((b+1)*blockRows, rows)).
//
// One pass sums blocks of rows into partial sums; src/kernels/reduce.ts chains passes
// (x → partials[nBlocks, cols] → … → out[cols]) so that no serial sum runs over more than
// blockRows values: a tree of serial sums, accurate for 55,000-row bias gradients.
// Lanes run along columns (the only per-lane address; contiguous for a GPU), and the rows of a
// block are the same for every lane of the workgroup. Four interleaved accumulators give the
// CPU's SIMD units independent FMA chains and shorten each serial sum by four.

override WG: u32 = 64u;           // lanes (columns) per workgroup
override ACCUMULATE: bool = false; // out += sum instead of out = sum

struct Params {
  rows: u32, cols: u32, blockRows: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let cols = params.cols;
  let j = wid.x * WG + lid.x;
  let jj = min(j, cols - 1u);         // clamped for loading; masked at the store
  let r0 = wid.y * params.blockRows;
  let r1 = min(r0 + params.blockRows, params.rows);
  var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  var s3 = 0.0;
  var i = r0;
  for (; i + 4u <= r1; i += 4u) {
    let base = i * cols + jj;
    s0 += x[base];
    s1 += x[base + cols];
    s2 += x[base + 2u * cols];
    s3 += x[base + 3u * cols];
  }
  for (; i < r1; i++) { s0 += x[i * cols + jj]; }
  if (j >= cols) { return; }
  var v = (s0 + s1) + (s2 + s3);
  let idx = wid.y * cols + j;
  if (ACCUMULATE) { v += out[idx]; }
  out[idx] = v;
}
