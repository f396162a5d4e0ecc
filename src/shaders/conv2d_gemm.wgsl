// 2-D convolution as an implicit GEMM, one kernel file for all three passes (forward, input
// gradient, weight gradient). Cross-correlation as in PyTorch: NCHW tensors, weights
// [C_out, C_in, kH, kW], stride (sh, sw), zero padding (ph, pw), dilation 1, groups 1; every
// tensor contiguous row-major.
//
//   Y[n, co, oy, ox] = bias[co] + sum_{ci,i,j} W[co, ci, i, j] * X[n, ci, oy*sh + i - ph, ox*sw + j - pw]
//
// Each pass is C[m, col] = sum_k A[m, k] * B[k, col]. A is read from `mat` (W or dY, no index
// arithmetic beyond strides); B is gathered from `img` through the convolution window (im2col on
// the fly, never materialized):
//
//   PASS 0 forward          m = co   col = output pixel (n, oy, ox)   k = tap (ci, i, j)
//                           A = W[co, ci, i, j]      B = X[n, ci, oy*sh + i - ph, ox*sw + j - pw]
//   PASS 1 input gradient   m = ci   col = input pixel (n, iy, ix)    k = tap (co, i, j)
//                           A = W[co, ci, i, j]      B = dY[n, co, oy, ox] where oy*sh = iy + ph - i
//   PASS 2 weight gradient  m = co   col = tap (ci, i, j)             k = output pixel (n, oy, ox)
//                           A = dY[n, co, oy, ox]    B = X[n, ci, oy*sh + i - ph, ox*sw + j - pw]
//
// The input gradient (a transposed convolution) runs once per stride phase (ry, rx): the input
// pixels with (iy + ph) % sh == ry and (ix + pw) % sw == rx, which only the taps i = ry + sh*a,
// j = rx + sw*b reach. Within a phase B needs no division and has no structural zeros; see the
// Params comment. A tap (channel, i, j) and a pixel (batch index, y, x) are both a triple, so one
// Coord type walks either. Rows and columns past the edge are clamped for loading and skipped at
// the store; padding reads become zeros through selects, not branches (llvmpipe runs invocations
// as SIMD lanes). Split-K (the weight gradient's K = N*H_out*W_out is long): workgroup z sums k in
// [z*k_chunk, (z+1)*k_chunk) into slice z of `out` ([splits, M, cols]); the caller adds the
// slices. Workgroups (row block, column block) are numbered column-block-fastest and folded into
// x and y like grid1d; z is the split.
//
// Entry points (conv.ts picks the kernel by device, bench/README-conv.md has the measurements):
//   pack_a + gemm_registers (CPU adapters): pack_a copies A into [K, ceil(M/4)] vec4s; then each
//     invocation accumulates 4*TM4 rows x TN columns of C in registers, reading A four rows per
//     vec4 load, with no workgroup memory and no barriers (expensive on llvmpipe).
//   gemm_tiled (GPUs): 16x16 invocations compute a 64 x 64 block of C, staging 16 steps of k of A
//     and B in workgroup memory (8.3 KB); each invocation accumulates 4 x 4 outputs.
// Limits: every element offset must fit in i32 (tensors below 2^31 elements).

struct Params {
  batch: i32, c_in: i32, height: i32, width: i32,
  c_out: i32, kh: i32, kw: i32, h_out: i32,
  w_out: i32, sh: i32, sw: i32, ph: i32,
  pw: i32, gemm_m: i32, gemm_n: i32, gemm_k: i32,
  k_chunk: i32, row_groups: i32, col_groups: i32, has_bias: i32,
  // Input gradient, phase (ry, rx): taps i = ry + sh*a (a < taps_y), j = rx + sw*b (b < taps_x);
  // pixels iy = iy0 + sh*u (u < cols_y), ix = ix0 + sw*v (v < cols_x); they meet at
  // oy = qy0 + u - a, ox = qx0 + v - b.
  ry: i32, rx: i32, taps_y: i32, taps_x: i32,
  iy0: i32, ix0: i32, cols_y: i32, cols_x: i32,
  qy0: i32, qx0: i32,
}

override PASS: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> img: array<f32>;
@group(0) @binding(2) var<storage, read> mat: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

/** A tap (channel, i, j) or a pixel (batch index, y, x). */
struct Coord { c: i32, y: i32, x: i32 }

/** The Coord of linear index `idx` in a [*, ny, nx] grid. */
fn coord_of(idx: i32, ny: i32, nx: i32) -> Coord {
  let t = idx / nx;
  return Coord(t / ny, t - (t / ny) * ny, idx - t * nx);
}

/** The Coord after `p` in the same grid (x fastest), without divisions. */
fn coord_next(p: Coord, ny: i32, nx: i32) -> Coord {
  let wrap_x = p.x + 1 == nx;
  let y = p.y + select(0, 1, wrap_x);
  let wrap_y = y == ny;
  return Coord(p.c + select(0, 1, wrap_y), select(y, 0, wrap_y), select(p.x + 1, 0, wrap_x));
}

// The grids k and col walk in each pass: [C, kH, kW] taps, [N, H_out, W_out] output pixels, and
// for the input gradient the taps and input pixels of one phase.
fn k_coord(k: i32) -> Coord {
  if (PASS == 0u) { return coord_of(k, params.kh, params.kw); }
  if (PASS == 1u) { return coord_of(k, params.taps_y, params.taps_x); }
  return coord_of(k, params.h_out, params.w_out);
}
fn k_next(p: Coord) -> Coord {
  if (PASS == 0u) { return coord_next(p, params.kh, params.kw); }
  if (PASS == 1u) { return coord_next(p, params.taps_y, params.taps_x); }
  return coord_next(p, params.h_out, params.w_out);
}
fn col_coord(col: i32) -> Coord {
  if (PASS == 0u) { return coord_of(col, params.h_out, params.w_out); }
  if (PASS == 1u) { return coord_of(col, params.cols_y, params.cols_x); }
  return coord_of(col, params.kh, params.kw);
}

fn load_a(m: i32, k: i32, kc: Coord) -> f32 {
  if (PASS == 0u) { return mat[m * params.gemm_k + k]; } // W[m, k]
  if (PASS == 1u) {                                       // W[co, m, ry + sh*a, rx + sw*b]
    let i = params.ry + params.sh * kc.y;
    let j = params.rx + params.sw * kc.x;
    return mat[((kc.c * params.c_in + m) * params.kh + i) * params.kw + j];
  }
  return mat[((kc.c * params.c_out + m) * params.h_out + kc.y) * params.w_out + kc.x]; // dY[n, m, oy, ox]
}

/** X[pix.c, tap.c, pix.y*sh - ph + tap.y, pix.x*sw - pw + tap.x], zero in the padding. */
fn im2col(pix: Coord, tap: Coord) -> f32 {
  // Split into a per-pixel and a per-tap part, so the compiler hoists whichever is loop-invariant.
  let y0 = pix.y * params.sh - params.ph;
  let x0 = pix.x * params.sw - params.pw;
  let pix_off = (pix.c * params.c_in * params.height + y0) * params.width + x0;
  let tap_off = (tap.c * params.height + tap.y) * params.width + tap.x;
  let y = y0 + tap.y;
  let x = x0 + tap.x;
  let inside = (y >= 0) & (y < params.height) & (x >= 0) & (x < params.width);
  return select(0.0, img[select(0, pix_off + tap_off, inside)], inside);
}

/** dY[pix.c, tap.c, qy0 + u - a, qx0 + v - b] for tap (co, a, b), pixel (n, u, v); zero outside. */
fn transposed_gather(tap: Coord, pix: Coord) -> f32 {
  let oy = params.qy0 + pix.y - tap.y;
  let ox = params.qx0 + pix.x - tap.x;
  let inside = (oy >= 0) & (oy < params.h_out) & (ox >= 0) & (ox < params.w_out);
  let idx = ((pix.c * params.c_out + tap.c) * params.h_out + oy) * params.w_out + ox;
  return select(0.0, img[select(0, idx, inside)], inside);
}

fn load_b(kc: Coord, cc: Coord) -> f32 {
  if (PASS == 0u) { return im2col(cc, kc); }
  if (PASS == 1u) { return transposed_gather(kc, cc); }
  return im2col(kc, cc);
}

fn store(m: i32, col: i32, cc: Coord, split: i32, v: f32) {
  if (PASS == 0u) {
    var b = 0.0;
    if (params.has_bias != 0) { b = bias[m]; }
    out[((cc.c * params.c_out + m) * params.h_out + cc.y) * params.w_out + cc.x] = v + b;
  } else if (PASS == 1u) {
    let iy = params.iy0 + params.sh * cc.y;
    let ix = params.ix0 + params.sw * cc.x;
    out[((cc.c * params.c_in + m) * params.height + iy) * params.width + ix] = v;
  } else {
    out[(split * params.gemm_m + m) * params.gemm_n + col] = v;
  }
}

// ---------------------------------------------------------------------------------------------
// For gemm_registers: A packed as [K, M4 = ceil(M/4)] vec4s (four rows of A per vec4, zero past M).

@group(0) @binding(4) var<storage, read_write> packed_out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn pack_a(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = i32(thread_index(wid, nwg, li, 64u));
  if (k >= params.gemm_k) { return; }
  let kc = k_coord(k);
  let m4 = (params.gemm_m + 3) / 4;
  for (var q = 0; q < m4; q++) {
    var v = vec4(0.0);
    for (var c = 0; c < 4; c++) {
      let m = 4 * q + c;
      v[c] = select(0.0, load_a(min(m, params.gemm_m - 1), k, kc), m < params.gemm_m);
    }
    packed_out[k * m4 + q] = v;
  }
}

// ---------------------------------------------------------------------------------------------
// Register-blocked: each invocation accumulates 4*TM4 rows x TN columns of C, with no workgroup
// memory and no barriers. The rows are the same for the whole workgroup and come from packed A,
// TM4 vec4 loads per k; the TN columns (n0 + t*WG_N) are gathered per invocation. On llvmpipe
// every buffer load inside a loop is a bounds-checked scalar load per SIMD lane, costing far more
// than the multiply-adds, so the block is as large as the registers allow (8 x 8 vec4
// accumulators) and A comes four values per load.

@group(0) @binding(2) var<storage, read> a_packed: array<vec4<f32>>;

// Invocations per workgroup; vec4s of rows (TM4 <= 8) and columns (TN <= 8) per invocation.
override WG_N: u32 = 64u;
override TM4: u32 = 4u;
override TN: u32 = 4u;

@compute @workgroup_size(WG_N)
fn gemm_registers(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let group = i32(workgroup_index(wid, nwg));
  if (group >= params.row_groups * params.col_groups) { return; }
  let q0 = (group / params.col_groups) * i32(TM4); // first vec4 of rows
  let n0 = (group % params.col_groups) * i32(WG_N * TN) + i32(lid.x);
  let m4 = (params.gemm_m + 3) / 4;
  var cols: array<Coord, 8>;
  for (var t = 0; t < i32(TN); t++) { cols[t] = col_coord(min(n0 + t * i32(WG_N), params.gemm_n - 1)); }

  let split = i32(wid.z);
  let k_begin = split * params.k_chunk;
  let k_end = min(params.gemm_k, k_begin + params.k_chunk);
  var acc: array<array<vec4<f32>, 8>, 8>; // [t][q]
  var kc = k_coord(k_begin);
  for (var k = k_begin; k < k_end; k++) {
    var b: array<f32, 8>;
    for (var t = 0; t < i32(TN); t++) { b[t] = load_b(kc, cols[t]); }
    for (var q = 0; q < i32(TM4); q++) {
      let a = a_packed[k * m4 + min(q0 + q, m4 - 1)];
      for (var t = 0; t < i32(TN); t++) { acc[t][q] = fma(a, vec4(b[t]), acc[t][q]); }
    }
    kc = k_next(kc);
  }

  // Only the rows and columns inside C. The bounds are run-time values, so the compiler keeps
  // this a loop rather than unrolling 4*TM4*TN scattered stores (compile time on llvmpipe).
  let rows_left = params.gemm_m - 4 * q0;
  for (var t = 0; t < i32(TN); t++) {
    let col = n0 + t * i32(WG_N);
    if (col >= params.gemm_n) { break; }
    for (var r = 0; r < min(4 * i32(TM4), rows_left); r++) {
      store(4 * q0 + r, col, cols[t], split, acc[t][r / 4][r % 4]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Workgroup-tiled: a 64 x 64 block of C per 256 invocations, k staged 16 at a time.

const BM = 64;
const BN = 64;
const BK = 16;
// tile_a rows are padded by one word so the column-wise stores below hit different banks.
const A_STRIDE = 65;
var<workgroup> tile_a: array<f32, 1040>; // [BK][A_STRIDE]: A[m_tile + mm, k0 + kk] at kk*A_STRIDE + mm
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]:       B[k0 + kk, n_tile + nn] at kk*BN + nn

@compute @workgroup_size(16, 16)
fn gemm_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
              @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let group = i32(workgroup_index(wid, nwg));
  if (group >= params.row_groups * params.col_groups) { return; }
  let m_tile = (group / params.col_groups) * BM;
  let n_tile = (group % params.col_groups) * BN;

  // What this invocation stages: A at k0 + a_kk for rows a_mm + 16r (consecutive invocations read
  // consecutive k), B at k0 + b_kk + 4r for column b_nn (consecutive invocations, consecutive columns).
  let a_kk = i32(li) % BK;
  let a_mm = i32(li) / BK;
  let b_nn = i32(li) % BN;
  let b_kk = i32(li) / BN;
  var a_rows: array<i32, 4>;
  for (var r = 0; r < 4; r++) { a_rows[r] = min(m_tile + a_mm + 16 * r, params.gemm_m - 1); }
  let b_col = col_coord(min(n_tile + b_nn, params.gemm_n - 1));

  let split = i32(wid.z);
  let k_begin = split * params.k_chunk;
  let k_end = min(params.gemm_k, k_begin + params.k_chunk);
  let tx = i32(lid.x);
  let ty = i32(lid.y);
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = k_begin; k0 < k_end; k0 += BK) {
    let ka = k0 + a_kk;
    let ka_safe = min(ka, k_end - 1);
    let kca = k_coord(ka_safe);
    for (var r = 0; r < 4; r++) {
      tile_a[a_kk * A_STRIDE + a_mm + 16 * r] = select(0.0, load_a(a_rows[r], ka_safe, kca), ka < k_end);
    }
    for (var r = 0; r < 4; r++) {
      let kb = k0 + b_kk + 4 * r;
      tile_b[(b_kk + 4 * r) * BN + b_nn] = select(0.0, load_b(k_coord(min(kb, k_end - 1)), b_col), kb < k_end);
    }
    workgroupBarrier();
    for (var kk = 0; kk < BK; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var r = 0; r < 4; r++) { a[r] = tile_a[kk * A_STRIDE + ty + 16 * r]; }
      for (var t = 0; t < 4; t++) { b[t] = tile_b[kk * BN + tx + 16 * t]; }
      for (var r = 0; r < 4; r++) {
        for (var t = 0; t < 4; t++) { acc[r][t] = fma(a[r], b[t], acc[r][t]); }
      }
    }
    workgroupBarrier();
  }

  for (var r = 0; r < 4; r++) {
    let m = m_tile + ty + 16 * r;
    for (var t = 0; t < 4; t++) {
      let col = n_tile + tx + 16 * t;
      if (m < params.gemm_m && col < params.gemm_n) { store(m, col, col_coord(col), split, acc[r][t]); }
    }
  }
}
