// Indexing with integer tensors (indices are i32).
//
//   index_select:          out[o, j, k] = x[o, idx[j], k]                x: [outer, dim, inner]
//   index_select_backward: gx[o, t, k] = sum_j (idx[j] == t) g[o, j, k]  (index_add without atomics:
//                          each output sums its own matches, O(m) per element; m = len(idx))
//   pick:                  out[n] = x[n, idx[n]]                         x: [rows, dim] (torch.gather
//                          along the last axis with one index per row: the target's log-probability)
//   one_hot:               out[n, c] = idx[n] == c ? 1 : 0
// All tensors contiguous, row-major; words copied as raw bits (any 32-bit dtype) where noted.
// An index outside [0, dim) reads 0. Tiling: 256 invocations per workgroup in a grid-stride loop
// over the output elements (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ... for S the
// grid's invocations), so the host bounds the grid (gridStride, src/engine/runtime.ts); the
// entry points with early exits compute element i in a function <entry>_at(i).

struct Params {
  n: u32,      // output elements
  dim: u32,    // length of the indexed axis of x
  m: u32,      // number of indices
  inner: u32,  // product of the axes after the indexed one
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

// Element i of index_select (the entry point below loops over i with a grid stride).
fn index_select_at(i: u32) {
  let k = i % params.inner;
  let j = (i / params.inner) % params.m;
  let o = i / (params.inner * params.m);
  let t = idx[j];
  if (t < 0 || u32(t) >= params.dim) { out[i] = 0u; return; }
  out[i] = x[(o * params.dim + u32(t)) * params.inner + k];
}

@compute @workgroup_size(256)
fn index_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    index_select_at(i);
  }
}

@compute @workgroup_size(256)
fn index_select_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let k = i % params.inner;
    let t = (i / params.inner) % params.dim;
    let o = i / (params.inner * params.dim);
    var acc = 0.0;
    for (var j = 0u; j < params.m; j++) {
      if (idx[j] == i32(t)) { acc += bitcast<f32>(x[(o * params.m + j) * params.inner + k]); }
    }
    out[i] = bitcast<u32>(acc);
  }
}

// Element i of pick (the entry point below loops over i with a grid stride).
fn pick_at(i: u32) {
  let t = idx[i];
  if (t < 0 || u32(t) >= params.dim) { out[i] = 0u; return; }
  out[i] = x[i * params.dim + u32(t)];
}

@compute @workgroup_size(256)
fn pick(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    pick_at(i);
  }
}

@compute @workgroup_size(256)
fn one_hot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let c = i % params.dim;
    let row = i / params.dim;
    out[i] = bitcast<u32>(select(0.0, 1.0, idx[row] == i32(c)));
  }
}
