// Batch-normalization forward, element-wise once the per-channel statistics are known:
//   y = (x - mean[c]) * invstd[c] * weight[c] + bias[c]   (then + residual[i] with RESIDUAL, relu with RELU)
// Training mode passes the batch mean and invstd from batchnorm_stats.wgsl; evaluation mode
// (EVAL) passes the running mean and running variance, and invstd = 1 / sqrt(var + eps) is taken
// here. Without a weight (bias) the kernel uses 1 (0); flags say which are present, and since
// WebGPU binds every declared buffer, the op binds x in place of an absent one.
//
// Layout: x and y contiguous [N, C, S] (S = product of the spatial axes, 1 for [N, C]), so the
// channel of element i is (i / S) % C; per-channel vectors are [C]. Two entry points, the same
// arithmetic (so the same bits):
//   bn_forward         256 invocations per workgroup in a grid-stride loop over the elements
//                      (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ... for S the grid's
//                      invocations; the host bounds the grid with gridStride, runtime.ts). For
//                      small planes (S < PLANE_MIN in batchnorm.ts), BatchNorm1d above all.
//   bn_forward_planes  one workgroup of 64 per plane (n, c), folded into 2-D (grid1d): the channel
//                      is the workgroup's, so its statistics are read once, as uniform loads, and
//                      no element pays the two integer divisions and four gathered loads of
//                      bn_forward (scalarized per lane on llvmpipe).

struct Params {
  n: u32,         // N * C * S
  channels: u32,  // C
  spatial: u32,   // S
  flags: u32,     // bit 0: weight present, bit 1: bias present
  eps: f32,
}

override EVAL: bool = false;
// Fused epilogue (ops/batchnorm.ts `residual` and `relu` options): + residual[i], then relu,
// exactly binary.wgsl's add and unary.wgsl's relu (NaN and -0 pass).
override RELU: bool = false;
override RESIDUAL: bool = false;

fn epilogue(v: f32, i: u32) -> f32 {
  var u = v;
  if (RESIDUAL) { u = u + residual[i]; }
  if (RELU) { u = select(u, 0.0, u < 0.0); }
  return u;
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> stat: array<f32>;  // invstd (training) or running var (EVAL)
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read> residual: array<f32>;  // read only with RESIDUAL

/** Channel c's (scale, shift): y = (x - mean) * scale + shift, scale = invstd * weight, shift = bias. */
fn affine_of(c: u32) -> vec2<f32> {
  var invstd = stat[c];
  if (EVAL) { invstd = 1.0 / sqrt(invstd + params.eps); }
  var scale = invstd;
  if ((params.flags & 1u) != 0u) { scale *= weight[c]; }
  var shift = 0.0;
  if ((params.flags & 2u) != 0u) { shift = bias[c]; }
  return vec2(scale, shift);
}

@compute @workgroup_size(256)
fn bn_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let c = (i / params.spatial) % params.channels;
    let a = affine_of(c);
    y[i] = epilogue((x[i] - mean[c]) * a.x + a.y, i);
  }
}

@compute @workgroup_size(64)
fn bn_forward_planes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let plane = workgroup_index(wid, nwg);
  if (plane * params.spatial >= params.n) { return; }
  let c = plane % params.channels;
  let m = mean[c];
  let a = affine_of(c);
  let base = plane * params.spatial;
  for (var s = lid; s < params.spatial; s += 64u) {
    y[base + s] = epilogue((x[base + s] - m) * a.x + a.y, base + s);
  }
}
