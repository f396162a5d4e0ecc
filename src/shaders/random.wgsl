// Counter-based random numbers: element i of a draw is a pure function of (seed, offset + i),
// computed with 32-bit integer hashing only, so the same seed gives the same bits on every
// backend and every batch of workgroups (no sequential state on the GPU).
//
//   hash(c)  = counter_hash(seed, c) from lib/counter_rng.wgsl (prepended by the Kernel)
//   uniform: out[i] = low + (high - low) * u,  u = (hash(offset + i) >> 8) / 2^24 in [0, 1)
//            (a result rounded up to high is replaced by low)
//   normal:  Box-Muller on h = hash(offset + i) and h2 = pcg(h ^ 0x85ebca6b):
//            out[i] = mean + std * sqrt(-2 ln u1) cos(2 pi u2), with u1 in (0, 1]
// Each draw takes params.n counters and the caller advances its offset past them, so no two draws
// of one generator share a counter.
//
// out is a contiguous f32 array of params.n elements. Tiling: 256 invocations per workgroup in a
// grid-stride loop over the elements (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ...
// for S the grid's invocations), so the host bounds the grid (gridStride, src/engine/runtime.ts);
// element i depends on (seed, offset + i) only, never on the grid.

struct Params {
  n: u32,
  seed: u32,
  offset: u32,
  a: f32,  // low (uniform) or mean (normal)
  b: f32,  // high (uniform) or standard deviation (normal)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn rand_uniform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    // u < 1, but float32 rounding of low + (high - low) u can still reach high (e.g. low = 1e6,
    // high = 1e6 + 1); such a value becomes low, as torch's uniform_ does, so out is in [low, high).
    let v = params.a + (params.b - params.a) * unit(counter_hash(params.seed, params.offset + i));
    out[i] = select(v, params.a, v >= params.b && params.b > params.a);
  }
}

@compute @workgroup_size(256)
fn rand_normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let h = counter_hash(params.seed, params.offset + i);
    let u1 = 1.0 - unit(h);              // (0, 1]: log(u1) is finite
    let u2 = unit(pcg(h ^ 0x85ebca6bu));
    let z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    out[i] = params.a + params.b * z;
  }
}
