// 2-D max and average pooling and their backward passes (torch.nn.functional.max_pool2d and
// avg_pool2d with dilation 1; ceil_mode only changes OH and OW, which the op computes).
//
// Layout: NCHW, contiguous; every (n, c) plane is pooled alone, so the kernels see [planes, H, W]
// in and [planes, OH, OW] out. Output (oy, ox) covers input rows oy * sh - ph .. + kh - 1 and
// columns ox * sw - pw .. + kw - 1; positions outside the input are padding:
//   max_pool2d:  padding counts as -inf, so only real positions compete; out is the maximum and
//                indices the flat position y * W + x of the first maximum in row-major window
//                order (PyTorch's tie rule; a NaN wins and propagates).
//   avg_pool2d:  out = sum over real positions / divisor, divisor = kh * kw clipped to the padded
//                input (a ceil_mode window may overhang it) when count_include_pad, else the
//                number of real positions.
// Backward passes gather rather than scatter (WGSL has no float atomics): the invocation for input
// (y, x) visits the at most ceil(kh / sh) * ceil(kw / sw) outputs whose windows cover it and sums
//   max: dy[o] where indices[o] == y * W + x;   avg: dy[o] / divisor(o).
// Each output (forward) or input (backward) element is computed on its own, in <entry>_at(i):
// 256 invocations per workgroup in a grid-stride loop over the elements (lib/grid.wgsl: an
// invocation takes i, i + S, i + 2S, ... for S the grid's invocations), so the host bounds the
// grid (gridStride, src/engine/runtime.ts). Limits: indices are i32 within a plane (H * W < 2^31).

struct Params {
  n: u32,       // invocations: planes * OH * OW (forward) or planes * H * W (backward)
  height: i32,  // H
  width: i32,   // W
  out_h: i32,   // OH
  out_w: i32,   // OW
  kh: i32,
  kw: i32,
  sh: i32,
  sw: i32,
  ph: i32,
  pw: i32,
  count_include_pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;            // x (forward) or dy (backward)
@group(0) @binding(2) var<storage, read_write> indices: array<i32>;  // argmax per output (max pool)
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;      // y (forward) or dx (backward)

/** (plane, row, column) of flat index i over planes of rows x cols. */
fn unflatten(i: u32, rows: i32, cols: i32) -> vec3<i32> {
  let col = i32(i % u32(cols));
  let rest = i / u32(cols);
  return vec3<i32>(i32(rest / u32(rows)), i32(rest % u32(rows)), col);
}

/** Rows (or columns) [first, last] of the outputs whose windows cover input row y. */
fn covering(y: i32, k: i32, s: i32, p: i32, outs: i32) -> vec2<i32> {
  let lo = y + p - k + 1;
  var first = 0;
  if (lo > 0) { first = (lo + s - 1) / s; }
  return vec2<i32>(first, min(outs - 1, (y + p) / s));
}

/** The average-pool divisor of output (oy, ox). */
fn divisor(oy: i32, ox: i32) -> f32 {
  let y0 = oy * params.sh - params.ph;
  let x0 = ox * params.sw - params.pw;
  let y1 = min(y0 + params.kh, params.height + params.ph);
  let x1 = min(x0 + params.kw, params.width + params.pw);
  if (params.count_include_pad != 0u) { return f32((y1 - y0) * (x1 - x0)); }
  return f32((min(y1, params.height) - max(y0, 0)) * (min(x1, params.width) - max(x0, 0)));
}

@compute @workgroup_size(256)
fn max_pool2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let o = unflatten(i, params.out_h, params.out_w);
    let plane = u32(o.x) * u32(params.height * params.width);
    let y0 = o.y * params.sh - params.ph;
    let x0 = o.z * params.sw - params.pw;
    var best = 0.0;
    var arg = -1;
    for (var y = max(y0, 0); y < min(y0 + params.kh, params.height); y++) {
      for (var x = max(x0, 0); x < min(x0 + params.kw, params.width); x++) {
        let at = y * params.width + x;
        let v = src[plane + u32(at)];
        // Strict > keeps the first maximum; a NaN takes over once and is then never beaten.
        if (arg < 0 || v > best || (v != v && best == best)) {
          best = v;
          arg = at;
        }
      }
    }
    dst[i] = best;
    indices[i] = arg;
  }
}

@compute @workgroup_size(256)
fn max_pool2d_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let p = unflatten(i, params.height, params.width);
    let me = p.y * params.width + p.z;
    let rows = covering(p.y, params.kh, params.sh, params.ph, params.out_h);
    let cols = covering(p.z, params.kw, params.sw, params.pw, params.out_w);
    let plane = u32(p.x) * u32(params.out_h * params.out_w);
    var acc = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
      for (var ox = cols.x; ox <= cols.y; ox++) {
        let o = plane + u32(oy * params.out_w + ox);
        if (indices[o] == me) { acc += src[o]; }
      }
    }
    dst[i] = acc;
  }
}

@compute @workgroup_size(256)
fn avg_pool2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let o = unflatten(i, params.out_h, params.out_w);
    let plane = u32(o.x) * u32(params.height * params.width);
    let y0 = o.y * params.sh - params.ph;
    let x0 = o.z * params.sw - params.pw;
    var acc = 0.0;
    for (var y = max(y0, 0); y < min(y0 + params.kh, params.height); y++) {
      for (var x = max(x0, 0); x < min(x0 + params.kw, params.width); x++) {
        acc += src[plane + u32(y * params.width + x)];
      }
    }
    dst[i] = acc / divisor(o.y, o.z);
  }
}

@compute @workgroup_size(256)
fn avg_pool2d_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let p = unflatten(i, params.height, params.width);
    let rows = covering(p.y, params.kh, params.sh, params.ph, params.out_h);
    let cols = covering(p.z, params.kw, params.sw, params.pw, params.out_w);
    let plane = u32(p.x) * u32(params.out_h * params.out_w);
    var acc = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
      for (var ox = cols.x; ox <= cols.y; ox++) {
        acc += src[plane + u32(oy * params.out_w + ox)] / divisor(oy, ox);
      }
    }
    dst[i] = acc;
  }
}
