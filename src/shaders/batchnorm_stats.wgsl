// Batch-normalization statistics in training mode: per-channel batch mean and 1/sqrt(var + eps)
// (biased variance, as used to normalize), and the in-place update of the running statistics
// with PyTorch's convention:
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * count / (count - 1)  (unbiased)
//
// Layout: x is contiguous [N, C, S] (S = 1 for [N, C], L for [N, C, L], H * W for NCHW). Channel
// c's count = N * S elements are numbered j = n * S + s and live at x[(n * C + c) * S + s].
//
// Two passes, numerically sound for data whose mean is large against its spread:
//   stats_partial:  grid (chunks, C). Workgroup (k, c) of WG invocations takes the k-th run of
//                   `chunk` consecutive elements of channel c and computes, in two sweeps over the
//                   run (the second one hits the cache), its mean and M2 = sum (x - mean)^2, each
//                   sweep a strided per-invocation sum plus a shared-memory tree. Splitting a
//                   channel into chunks keeps a GPU busy when C is small and N * S large.
//   stats_finalize[_update]: one invocation per channel merges the chunks' (count, mean, M2)
//                   with Chan et al.'s pairwise rule
//                     delta = mean_b - mean_a,  mean = mean_a + delta * n_b / n,
//                     M2 = M2_a + M2_b + delta^2 * n_a * n_b / n,
//                   writes save_mean and save_invstd (kept for the backward pass) and, in the
//                   _update variant, the running statistics. The caller guarantees count >= 2.
// partial holds (mean, M2) pairs at [c, k]. WG, a power of two, is an override (256 on GPUs, 64 on
// CPU rasterizers, where every barrier costs per invocation). Limits: C and chunks <= 65535.

struct Params {
  count: u32,     // N * S, elements per channel
  channels: u32,  // C
  spatial: u32,   // S
  chunk: u32,     // elements per partial workgroup (the last run may be shorter)
  chunks: u32,    // partial workgroups per channel
  eps: f32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> running_var: array<f32>;

override WG: u32 = 256u;  // invocations per stats_partial workgroup, a power of two
var<workgroup> tree: array<f32, WG>;

/** Sum over the workgroup of each invocation's v; every invocation gets the total. */
fn workgroup_sum(lid: u32, v: f32) -> f32 {
  tree[lid] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    if (lid < half) { tree[lid] += tree[lid + half]; }
    workgroupBarrier();
  }
  let total = tree[0];
  workgroupBarrier(); // everyone has read tree[0] before the next call overwrites it
  return total;
}


@compute @workgroup_size(WG)
fn stats_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  let c = wid.y;
  let begin = k * params.chunk;
  let end = min(begin + params.chunk, params.count);
  var s = 0.0;
  var w = walk_at(c, begin + lid);
  for (var j = begin + lid; j < end; j += WG) {
    s += x[w.o];
    w = walk_next(c, w);
  }
  let mean = workgroup_sum(lid, s) / f32(end - begin);
  var q = 0.0;
  w = walk_at(c, begin + lid);
  for (var j = begin + lid; j < end; j += WG) {
    let d = x[w.o] - mean;
    q += d * d;
    w = walk_next(c, w);
  }
  let m2 = workgroup_sum(lid, q);
  if (lid == 0u) { partial[c * params.chunks + k] = vec2<f32>(mean, m2); }
}

/** Merges channel c's chunks; returns (mean, M2) over all count elements. */
fn merge_chunks(c: u32) -> vec2<f32> {
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var k = 0u; k < params.chunks; k++) {
    let nb = f32(min(params.chunk, params.count - k * params.chunk));
    let b = partial[c * params.chunks + k];
    let total = n + nb;
    let delta = b.x - mean;
    mean += delta * (nb / total);
    m2 += b.y + delta * delta * (n * nb / total);
    n = total;
  }
  return vec2<f32>(mean, m2);
}

fn save(c: u32, stats: vec2<f32>) {
  save_mean[c] = stats.x;
  save_invstd[c] = 1.0 / sqrt(stats.y / f32(params.count) + params.eps);
}

@compute @workgroup_size(64)
fn stats_finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.channels) { return; }
  save(c, merge_chunks(c));
}

@compute @workgroup_size(64)
fn stats_finalize_update(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.channels) { return; }
  let stats = merge_chunks(c);
  save(c, stats);
  let m = params.momentum;
  let unbiased = stats.y / f32(params.count - 1u);
  running_mean[c] = (1.0 - m) * running_mean[c] + m * stats.x;
  running_var[c] = (1.0 - m) * running_var[c] + m * unbiased;
}
