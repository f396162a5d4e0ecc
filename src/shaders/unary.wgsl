// Element-wise unary ops on f32: out[i] = f(x[i]), with up to two scalar arguments.
//
// Layout: x and out are contiguous arrays of params.n elements (any shape: element-wise ops do
// not care). Tiling: 256 invocations per workgroup, each looping over elements i, i + S, i + 2S,
// ... (S the grid's invocation count; thread_index and grid_stride, lib/grid.wgsl), so the host
// bounds the grid (gridStride, src/engine/runtime.ts): one element per invocation for small n.
// OP selects f at pipeline creation, so each op compiles to its own branch-free kernel.

struct Params {
  n: u32,
  alpha: f32,  // clamp's low bound, pow's exponent, affine's scale, step's threshold
  beta: f32,   // clamp's high bound, affine's offset
}

// 0 neg, 1 exp, 2 log, 3 sqrt, 4 relu, 5 abs, 6 clamp(alpha, beta), 7 pow(x, alpha),
// 8 affine alpha * x + beta, 9 sign, 10 reciprocal, 11 square, 12 sigmoid, 13 tanh,
// 14 step (x > alpha ? 1 : 0), 15 sin, 16 cos
override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn apply(v: f32) -> f32 {
  switch OP {
    case 0u: { return -v; }
    case 1u: { return exp(v); }
    case 2u: { return log(v); }
    case 3u: { return sqrt(v); }
    case 4u: { return select(v, 0.0, v < 0.0); }  // NaN stays NaN (max(NaN, 0) may give 0)
    case 5u: { return abs(v); }
    case 6u: { return clamp(v, params.alpha, params.beta); }
    case 7u: {
      // WGSL's pow is exp2(p log2 v): undefined for v < 0 and for v = 0. Integer exponents of
      // negative bases follow the sign rule; x^0 = 1 and 0^p = 0 or inf, as in torch.pow.
      let p = params.alpha;
      if (p == 0.0) { return 1.0; }
      if (v == 0.0) { return select(1.0 / abs(v), 0.0, p > 0.0); }
      let m = pow(abs(v), p);
      if (v < 0.0 && p == floor(p)) {
        if (fract(p * 0.5) != 0.0) { return -m; }
        return m;
      }
      return pow(v, p);
    }
    case 8u: { return params.alpha * v + params.beta; }
    case 9u: { return sign(v); }
    case 10u: { return 1.0 / v; }
    case 11u: { return v * v; }
    case 12u: { return 1.0 / (1.0 + exp(-v)); }
    case 13u: { return tanh(v); }
    case 14u: { return select(0.0, 1.0, v > params.alpha); }
    case 15u: { return sin(v); }
    case 16u: { return cos(v); }
    default: { return v; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    out[i] = apply(x[i]);
  }
}
