// Inverted dropout with a counter-based mask: out[i] = keep(i) ? x[i] * scale : 0, where
//   keep(i) = u(offset + i) >= p,  u = the uniform in [0, 1) that random.wgsl's rand_uniform draws
//   for counter offset + i under the same seed,  scale = 1 / (1 - p).
// The mask is a pure function of (seed, offset, i), so it is never stored: the backward pass runs
// this same kernel on the output gradient with the same seed and offset. Both this kernel and
// random.wgsl take the hash from lib/counter_rng.wgsl (a test compares the mask with rand()).
//
// Layout: x and out contiguous arrays of params.n elements (any shape). Tiling: 256 invocations
// per workgroup in a grid-stride loop over the elements (lib/grid.wgsl: an invocation takes i,
// i + S, i + 2S, ... for S the grid's invocations), so the host bounds the grid (gridStride,
// src/engine/runtime.ts); the mask depends on i only, never on the grid.

struct Params {
  n: u32,
  seed: u32,
  offset: u32,
  p: f32,      // drop probability
  scale: f32,  // 1 / (1 - p), or 0 when p = 1
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let keep = unit(counter_hash(params.seed, params.offset + i)) >= params.p;
    out[i] = select(0.0, x[i] * params.scale, keep);
  }
}
