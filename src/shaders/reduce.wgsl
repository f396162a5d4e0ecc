// Reductions over any set of axes: sum, max, min, and argmax.
//
// The TypeScript side splits the input's axes into kept axes (the output's shape) and reduced
// axes, and merges neighbours that are contiguous in memory, so most reductions arrive here with
// one reduced axis. Input x is read through element strides:
//   x offset = sum over kept axes k of idx_k * out_stride_k + sum over reduced axes r of idx_r * red_stride_r
// Parallelism: invocation t handles output o = t / chunks and the c = t % chunks-th run of
// `chunk` consecutive reduced elements, written to partial[t]. When chunks > 1 the caller reduces
// the [n_out, chunks] partials again (a second, small pass). Serial runs suit llvmpipe, where
// workgroup barriers are dear, and summing in runs of `chunk` keeps float32 error low
// (error grows with the run length, not with the total count).
// Output words are raw bits: f32 for sum/max/min, i32 (the flat reduced index) for argmax.

struct Params {
  n_out: u32,
  out_rank: u32,
  red_rank: u32,
  red_size: u32,
  chunk: u32,
  chunks: u32,
  out_shape: array<vec4<u32>, 2>,
  out_stride: array<vec4<u32>, 2>,
  red_shape: array<vec4<u32>, 2>,
  red_stride: array<vec4<u32>, 2>,
}

// 0 sum, 1 max, 2 min, 3 argmax (first maximal index; NaN counts as maximal)
override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

fn axis_at(v: array<vec4<u32>, 2>, d: u32) -> u32 {
  return v[d / 4u][d % 4u];
}

/**
 * Position in the reduced axes while a run walks them: with at most two reduced axes (nearly every
 * reduction after merging: [N, H*W] for per-channel sums), the pair (outer, inner) steps like an
 * odometer, so no element costs an integer division (scalarized per lane on llvmpipe, where it
 * made per-channel sums 2-20x slower than the batch-norm kernels' reductions). Deeper ranks fall
 * back to reduced_offset. The elements and their order are the same either way.
 */
struct Cursor { outer: u32, inner: u32, off: u32 }

fn cursor_at(r: u32) -> Cursor {
  if (params.red_rank > 2u) { return Cursor(0u, r, reduced_offset(r)); }
  if (params.red_rank < 2u) { return Cursor(0u, r, r * params.red_stride[0][0]); }
  let len = params.red_shape[0][1];
  let outer = r / len;
  let inner = r - outer * len;
  return Cursor(outer, inner, outer * params.red_stride[0][0] + inner * params.red_stride[0][1]);
}

fn cursor_next(c: Cursor) -> Cursor {
  if (params.red_rank > 2u) { return Cursor(0u, c.inner + 1u, reduced_offset(c.inner + 1u)); }
  if (params.red_rank < 2u) { return Cursor(0u, c.inner + 1u, c.off + params.red_stride[0][0]); }
  let wrap = c.inner + 1u == params.red_shape[0][1];
  let outer = c.outer + select(0u, 1u, wrap);
  let inner = select(c.inner + 1u, 0u, wrap);
  return Cursor(outer, inner, outer * params.red_stride[0][0] + inner * params.red_stride[0][1]);
}

fn reduced_offset(r: u32) -> u32 {
  if (params.red_rank == 1u) { return r * params.red_stride[0][0]; }
  var rem = r;
  var off = 0u;
  for (var d = i32(params.red_rank) - 1; d >= 0; d--) {
    let len = axis_at(params.red_shape, u32(d));
    off += (rem % len) * axis_at(params.red_stride, u32(d));
    rem = rem / len;
  }
  return off;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid, 64u);
  if (t >= params.n_out * params.chunks) { return; }
  let o = t / params.chunks;
  let c = t % params.chunks;
  var rem = o;
  var base = 0u;
  for (var d = i32(params.out_rank) - 1; d >= 0; d--) {
    let len = axis_at(params.out_shape, u32(d));
    base += (rem % len) * axis_at(params.out_stride, u32(d));
    rem = rem / len;
  }
  let begin = c * params.chunk;
  let end = min(begin + params.chunk, params.red_size);
  // max, min and argmax start from the run's first element, so runs of infinities stay exact
  // (a -FLT_MAX start would turn max(-inf, -inf) into -FLT_MAX). A run is empty only when
  // red_size is 0, which only sum allows (the sum is then 0).
  var acc = 0.0;
  var best = begin;
  var r = begin;
  var at = cursor_at(begin);
  if (OP != 0u && begin < end) {
    acc = x[base + at.off];
    r = begin + 1u;
    at = cursor_next(at);
  }
  for (; r < end; r++) {
    let v = x[base + at.off];
    at = cursor_next(at);
    switch OP {
      case 1u: { acc = max(acc, v); }
      case 2u: { acc = min(acc, v); }
      case 3u: {
        // Strictly greater keeps the first maximum. NaN != NaN: a NaN wins once and then keeps
        // winning (torch.argmax treats NaN as the maximum).
        if (v > acc || (v != v && acc == acc)) { acc = v; best = r; }
      }
      default: { acc += v; }
    }
  }
  if (OP == 3u) {
    out[t] = best;
  } else {
    out[t] = bitcast<u32>(acc);
  }
}
