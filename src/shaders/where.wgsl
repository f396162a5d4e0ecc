// Broadcasting select: out[i] = cond[ic(i)] != 0 ? a[ia(i)] : b[ib(i)], all f32.
//
// Layout as in binary.wgsl: out contiguous with shape params.shape (rank <= 8), inputs read
// through per-output-axis strides (0 = broadcast). Tiling: 256 invocations per workgroup, each
// looping over output elements i, i + S, i + 2S, ... (S the grid's invocation count: a grid-stride
// loop, lib/grid.wgsl), so the host bounds the grid (gridStride, src/engine/runtime.ts).

struct Params {
  n: u32,
  rank: u32,
  shape: array<vec4<u32>, 2>,
  stride_c: array<vec4<u32>, 2>,
  stride_a: array<vec4<u32>, 2>,
  stride_b: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cond: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    var rem = i;
    var ic = 0u;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(params.rank) - 1; d >= 0; d--) {
      let q = u32(d) / 4u;
      let r = u32(d) % 4u;
      let len = params.shape[q][r];
      let idx = rem % len;
      rem = rem / len;
      ic += idx * params.stride_c[q][r];
      ia += idx * params.stride_a[q][r];
      ib += idx * params.stride_b[q][r];
    }
    out[i] = select(b[ib], a[ia], cond[ic] != 0.0);
  }
}
