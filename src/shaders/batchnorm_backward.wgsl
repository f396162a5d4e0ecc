// Batch-normalization backward. With xhat = (x - mean[c]) * invstd[c], n = N * S elements per
// channel and gamma = weight[c] (1 when absent):
//   dbias[c]   = sum dy                 dweight[c] = sum dy * xhat
//   training:  dx = gamma * invstd * (dy - sum(dy) / n - xhat * sum(dy * xhat) / n)
//              (the batch statistics depend on x: the standard formula
//               dx = (1/n) gamma invstd (n dy - sum dy - xhat sum dy xhat))
//   eval:      dx = dy * gamma * invstd (the running statistics are constants)
// mean/invstd are the batch statistics saved by batchnorm_stats.wgsl; with EVAL, stat holds the
// running variance and invstd = 1 / sqrt(var + eps).
//
// Layout: x, dy and dx contiguous [N, C, S] (S = 1 for [N, C]); channel c's element j = n * S + s
// lives at (n * C + c) * S + s; per-channel vectors are [C].
//   backward_partial:  grid (chunks, C), WG invocations per workgroup (an override, a power of
//                      two: 256 on GPUs, 64 on CPU rasterizers); workgroup (k, c) sums
//                      (dy, dy * xhat) over the k-th run of `chunk` elements of channel c
//                      (strided per-invocation sums, then a shared-memory tree) into partial[c, k].
//   backward_finalize: one invocation per channel adds its chunks into sum_dy and sum_dy_xhat
//                      (these are dbias and dweight).
//   backward_input[_eval]: element-wise over dx, 256 invocations per workgroup in a grid-stride
//                      loop (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ... for S the
//                      grid's invocations), the grid bounded by gridStride (src/engine/runtime.ts).
//   backward_input[_eval]_planes: the same arithmetic (the same bits) with one workgroup of 64
//                      per plane (n, c), as bn_forward_planes in batchnorm.wgsl: the channel's
//                      values are read once per workgroup, not gathered per element.
// Limits: C and chunks <= 65535 (grid dimensions).

struct Params {
  n: u32,         // N * C * S, for the element-wise kernels
  count: u32,     // N * S, elements per channel
  channels: u32,  // C
  spatial: u32,   // S
  chunk: u32,
  chunks: u32,
  flags: u32,     // bit 0: weight present
  eps: f32,
}

override EVAL: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> stat: array<f32>;  // invstd, or the running var with EVAL
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> sum_dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> sum_dy_xhat: array<f32>;
@group(0) @binding(9) var<storage, read_write> dx: array<f32>;

override WG: u32 = 256u;  // invocations per backward_partial workgroup, a power of two
var<workgroup> tree: array<vec2<f32>, WG>;

fn invstd_of(c: u32) -> f32 {
  if (EVAL) { return 1.0 / sqrt(stat[c] + params.eps); }
  return stat[c];
}

fn gamma_of(c: u32) -> f32 {
  if ((params.flags & 1u) != 0u) { return weight[c]; }
  return 1.0;
}


@compute @workgroup_size(WG)
fn backward_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  let c = wid.y;
  let m = mean[c];
  let invstd = invstd_of(c);
  let end = min((k + 1u) * params.chunk, params.count);
  var acc = vec2<f32>(0.0);
  var w = walk_at(c, k * params.chunk + lid);
  for (var j = k * params.chunk + lid; j < end; j += WG) {
    let g = dy[w.o];
    acc += vec2<f32>(g, g * (x[w.o] - m) * invstd);
    w = walk_next(c, w);
  }
  tree[lid] = acc;
  workgroupBarrier();
  for (var width = WG / 2u; width > 0u; width >>= 1u) {
    if (lid < width) { tree[lid] += tree[lid + width]; }
    workgroupBarrier();
  }
  if (lid == 0u) { partial[c * params.chunks + k] = tree[0]; }
}

@compute @workgroup_size(64)
fn backward_finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.channels) { return; }
  var total = vec2<f32>(0.0);
  for (var k = 0u; k < params.chunks; k++) { total += partial[c * params.chunks + k]; }
  sum_dy[c] = total.x;
  sum_dy_xhat[c] = total.y;
}

@compute @workgroup_size(256)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let c = (i / params.spatial) % params.channels;
    let invstd = invstd_of(c);
    let inv_n = 1.0 / f32(params.count);
    let xhat = (x[i] - mean[c]) * invstd;
    dx[i] = gamma_of(c) * invstd * (dy[i] - sum_dy[c] * inv_n - xhat * (sum_dy_xhat[c] * inv_n));
  }
}

@compute @workgroup_size(256)
fn backward_input_eval(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let c = (i / params.spatial) % params.channels;
    dx[i] = dy[i] * gamma_of(c) * invstd_of(c);
  }
}

@compute @workgroup_size(64)
fn backward_input_planes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let plane = workgroup_index(wid, nwg);
  if (plane * params.spatial >= params.n) { return; }
  let c = plane % params.channels;
  let invstd = invstd_of(c);
  let inv_n = 1.0 / f32(params.count);
  let m = mean[c];
  let scale = gamma_of(c) * invstd;
  let mean_dy = sum_dy[c] * inv_n;
  let mean_dy_xhat = sum_dy_xhat[c] * inv_n;
  let base = plane * params.spatial;
  for (var s = lid; s < params.spatial; s += 64u) {
    let i = base + s;
    let xhat = (x[i] - m) * invstd;
    dx[i] = scale * (dy[i] - mean_dy - xhat * mean_dy_xhat);
  }
}

@compute @workgroup_size(64)
fn backward_input_eval_planes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
  let plane = workgroup_index(wid, nwg);
  if (plane * params.spatial >= params.n) { return; }
  let c = plane % params.channels;
  let gamma = gamma_of(c);
  let invstd = invstd_of(c);
  let base = plane * params.spatial;
  for (var s = lid; s < params.spatial; s += 64u) {
    dx[base + s] = dy[base + s] * gamma * invstd;
  }
}
