// Strided copies of 32-bit words (any dtype): the kernels behind permute, slice, expand and concat.
//
//   gather:  out[i]                              = src[offset + sum_d idx_d(i) * stride_d]
//   scatter: dst[offset + sum_d idx_d(i) * stride_d] = src[i]
//
// idx_d(i) is the row-major multi-index of i in params.shape (rank <= 8). gather reads a strided
// view (a permutation of axes, a slice, a broadcast with stride 0) into a contiguous tensor;
// scatter writes a contiguous tensor into a strided region of a larger one (a slice's gradient, a
// piece of a concatenation). Tiling: 256 invocations per workgroup in a grid-stride loop over the
// elements of params.shape (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ... for S the
// grid's invocations), so the host bounds the grid (gridStride, src/engine/runtime.ts).

struct Params {
  n: u32,
  rank: u32,
  offset: u32,
  shape: array<vec4<u32>, 2>,
  stride: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

fn strided_offset(i: u32) -> u32 {
  var rem = i;
  var off = params.offset;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let q = u32(d) / 4u;
    let r = u32(d) % 4u;
    let len = params.shape[q][r];
    off += (rem % len) * params.stride[q][r];
    rem = rem / len;
  }
  return off;
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    out[i] = src[strided_offset(i)];
  }
}

@compute @workgroup_size(256)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    out[strided_offset(i)] = src[i];
  }
}
