// Linear combination of up to four equally shaped f32 arrays, out[i] = sum_k c[k] * w_k[i]: a
// curve's point w(t) = sum_k c_k(t) w_k (src/align/curve.ts) and its gradient c_k * g, in one
// pass instead of a chain of scale-and-add kernels.
//
// Layout: w0..w3 and out are contiguous arrays of params.n elements; terms k >= params.terms are
// not read (their bindings may repeat w0). Tiling: 256 invocations per workgroup and a grid-stride
// loop (lib/grid.wgsl: each invocation handles elements i, i + S, i + 2S, ... for S the grid's
// invocations), so the host bounds the grid (gridStride, src/engine/runtime.ts): on CPU adapters
// (llvmpipe) a workgroup has a fixed start-up cost that a one-element-per-invocation grid pays
// n / 256 times.

struct Params {
  n: u32,
  terms: u32,
  c: vec4<f32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w0: array<f32>;
@group(0) @binding(2) var<storage, read> w1: array<f32>;
@group(0) @binding(3) var<storage, read> w2: array<f32>;
@group(0) @binding(4) var<storage, read> w3: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    var acc = params.c.x * w0[i];
    if (params.terms > 1u) { acc += params.c.y * w1[i]; }
    if (params.terms > 2u) { acc += params.c.z * w2[i]; }
    if (params.terms > 3u) { acc += params.c.w * w3[i]; }
    out[i] = acc;
  }
}
