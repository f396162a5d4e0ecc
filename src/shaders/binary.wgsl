// Element-wise binary ops with NumPy broadcasting: out[i] = f(a[ia(i)], b[ib(i)]).
//
// Layout: out is contiguous with the broadcast shape params.shape (rank <= 8, row-major). a and b
// are read through per-axis element strides given in output axes: a stride of 0 repeats an axis
// of length 1 (broadcast). With CONTIGUOUS set, a, b and out have the same shape and no index math
// is done. Inputs are read as raw 32-bit words and converted by DTYPE (0 f32, 1 i32, 2 u32), so
// comparisons work on integer labels; the result is always f32 (comparisons give 1.0 or 0.0).
// Tiling: 256 invocations per workgroup, each looping over output elements i, i + S, i + 2S, ...
// (S the grid's invocation count: a grid-stride loop, lib/grid.wgsl), so the host bounds the grid
// (gridStride, src/engine/runtime.ts); both paths, contiguous and strided.

struct Params {
  n: u32,
  rank: u32,
  shape: array<vec4<u32>, 2>,
  stride_a: array<vec4<u32>, 2>,
  stride_b: array<vec4<u32>, 2>,
}

// 0 add, 1 sub, 2 mul, 3 div, 4 pow, 5 maximum, 6 minimum,
// 7 lt, 8 le, 9 gt, 10 ge, 11 eq, 12 ne,
// 13 relu_grad: x * (y > 0 ? 1 : 0), ReLU's backward from its output y (relu(x) > 0 exactly where
//    x > 0), in one pass and with the same bits as mul(g, step(x))
override OP: u32 = 0u;
override DTYPE: u32 = 0u;
override CONTIGUOUS: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn load(word: u32) -> f32 {
  if (DTYPE == 1u) { return f32(bitcast<i32>(word)); }
  if (DTYPE == 2u) { return f32(word); }
  return bitcast<f32>(word);
}

fn apply(x: f32, y: f32) -> f32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return x / y; }
    case 4u: { return pow(x, y); }
    case 5u: { return max(x, y); }
    case 6u: { return min(x, y); }
    case 7u: { return select(0.0, 1.0, x < y); }
    case 8u: { return select(0.0, 1.0, x <= y); }
    case 9u: { return select(0.0, 1.0, x > y); }
    case 10u: { return select(0.0, 1.0, x >= y); }
    case 11u: { return select(0.0, 1.0, x == y); }
    case 12u: { return select(0.0, 1.0, x != y); }
    case 13u: { return x * select(0.0, 1.0, y > 0.0); }
    default: { return x; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let start = thread_index(wid, nwg, lid, 256u);
  let stride = grid_stride(nwg, 256u);
  if (CONTIGUOUS) {
    for (var i = start; i < params.n; i += stride) {
      out[i] = apply(load(a[i]), load(b[i]));
    }
    return;
  }
  for (var i = start; i < params.n; i += stride) {
    // Peel output axes from the last (fastest) to the first.
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(params.rank) - 1; d >= 0; d--) {
      let q = u32(d) / 4u;
      let r = u32(d) % 4u;
      let len = params.shape[q][r];
      let idx = rem % len;
      rem = rem / len;
      ia += idx * params.stride_a[q][r];
      ib += idx * params.stride_b[q][r];
    }
    out[i] = apply(load(a[ia]), load(b[ib]));
  }
}
