// Direct 3x3 convolution, stride 1, padding 1, for rows of a multiple of 8 pixels: the forward
// pass and the input gradient (conv3x3_direct), and the weight gradient (conv3x3_direct_weight,
// at the end of the file) of conv2d_gemm.wgsl's GEMMs (same Params, bindings, loaders and
// store, prepended by the Kernel), computed with vector loads of whole image rows. CPU adapters
// with subgroups (Mesa's lavapipe).
//
//   PASS 0 forward          Y[n, m, y, x]  = sum_{c,i,j} W[m, c, i, j] * X[n, c, y + i - 1, x + j - 1]
//   PASS 1 input gradient   dX[n, m, y, x] = sum_{c,i,j} W[c, m, i, j] * dY[n, c, y + 1 - i, x + 1 - j]
//
// (the input gradient of a stride-1, padding-1 3x3 convolution is the same kind of convolution of
// dY with the kernel flipped and transposed). Both are conv2d_gemm's C[m, col] = sum_k A[m, k]
// B[k, col] with k = (c, i, j) and col = pixel (n, y, x); here the loop takes the three j of one
// (c, i) together.
//
// Why: in the GEMM kernels each B value is a gathered scalar load, which on llvmpipe is a scalar
// load per SIMD lane. Here each lane owns 8 consecutive pixels x0..x0+7 of one row (x0 a multiple
// of 8), and the 10 image values that the three taps j of a kernel row (c, i) need, x0-1..x0+8,
// come from four aligned vec4 loads (x0-4.., x0.., x0+4.., x0+8..): 4 loads for 24 B values
// instead of 24. A is shared across the subgroup as in conv2d_subgroup.wgsl: a workgroup is one
// subgroup of 8 lanes computing 16 rows x 64 pixels; lane l loads rows l and l + 8 of A and
// receives the others by subgroupShuffle. Padding: rows outside the image and the values left of
// x = 0 and right of x = W - 1 become zeros through selects.
//
// Every output is the same float32 fma chain as in the GEMM kernels, over k = (c, i, j) in
// increasing order, so the results are bitwise theirs.
//
// Layout: as conv2d_gemm.wgsl; the image is also read as vec4s (img4), which is exact because a
// row starts at a multiple of 4 floats when W % 8 == 0. acc[t][q] holds rows 4q..4q+3 of pixel
// x0 + t. Limits: the host runs this only for 3x3 kernels with stride 1 and padding 1, W % 8 == 0,
// and subgroups of at least 8 invocations.
enable subgroups;

const D_LANES = 8u;
const D_ROWS = 16u;
const D_PIXELS = 8u;

@group(0) @binding(1) var<storage, read> img4: array<vec4<f32>>;

/** A[m, (c, i, j)]: W[m, c, i, j] (forward) or W[c, m, i, j] (input gradient). */
fn direct_a(m: i32, c: i32, i: i32, j: i32) -> f32 {
  if (PASS == 0u) { return mat[((m * params.c_in + c) * 3 + i) * 3 + j]; }
  return mat[((c * params.c_in + m) * 3 + i) * 3 + j];
}

@compute @workgroup_size(D_LANES)
fn conv3x3_direct(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let group = i32(workgroup_index(wid, nwg));
  if (group >= params.row_groups * params.col_groups) { return; }
  let m0 = (group / params.col_groups) * i32(D_ROWS);
  let col0 = (group % params.col_groups) * i32(D_LANES * D_PIXELS) + i32(lane * D_PIXELS);
  // The image B is read from: X [N, C_in, H, W] forward, dY [N, C_out, H, W] for the input gradient.
  let channels = select(params.c_out, params.c_in, PASS == 0u);
  let h = params.height;
  let w = params.width;
  // A lane past the last pixel repeats the last 8 (all lanes take part in the shuffles) and stores nothing.
  let pix = coord_of(min(col0, params.gemm_n - i32(D_PIXELS)), h, w);
  var rows: array<i32, 2>;
  for (var r = 0; r < 2; r++) { rows[r] = min(m0 + i32(lane) + 8 * r, params.gemm_m - 1); }
  // Row offset of kernel row i, and the first value of the 16 loaded (x0 - 4).
  let sign = select(-1, 1, PASS == 0u);
  let left = pix.x > 0;
  let right = pix.x + 8 < w;

  var acc: array<array<vec4<f32>, 4>, 8>; // [t][q]
  for (var c = 0; c < channels; c++) {
    let plane = (pix.c * channels + c) * h;
    for (var i = 0; i < 3; i++) {
      var own: array<array<f32, 3>, 2>;
      for (var r = 0; r < 2; r++) {
        for (var j = 0; j < 3; j++) { own[r][j] = direct_a(rows[r], c, i, j); }
      }
      let y = pix.y + sign * (i - 1);
      let inside = (y >= 0) & (y < h);
      let q0 = ((plane + select(0, y, inside)) * w + pix.x) / 4; // vec4 index of x0
      let v0 = select(vec4(0.0), img4[select(q0, q0 - 1, left)], inside & left);
      let v1 = select(vec4(0.0), img4[q0], inside);
      let v2 = select(vec4(0.0), img4[q0 + 1], inside);
      let v3 = select(vec4(0.0), img4[select(q0, q0 + 2, right)], inside & right);
      // seg[u] = image[x0 - 4 + u]; tap j reads pixel x0 + t + sign * (j - 1).
      let seg = array<f32, 16>(v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w,
                               v2.x, v2.y, v2.z, v2.w, v3.x, v3.y, v3.z, v3.w);
      for (var j = 0; j < 3; j++) {
        let shift = 4 + sign * (j - 1);
        for (var q = 0u; q < 4u; q++) {
          let a = vec4(subgroupShuffle(own[(4u * q) / 8u][j], (4u * q) % 8u),
                       subgroupShuffle(own[(4u * q + 1u) / 8u][j], (4u * q + 1u) % 8u),
                       subgroupShuffle(own[(4u * q + 2u) / 8u][j], (4u * q + 2u) % 8u),
                       subgroupShuffle(own[(4u * q + 3u) / 8u][j], (4u * q + 3u) % 8u));
          for (var t = 0; t < 8; t++) { acc[t][q] = fma(a, vec4(seg[shift + t]), acc[t][q]); }
        }
      }
    }
  }

  if (col0 >= params.gemm_n) { return; }
  let rows_left = params.gemm_m - m0;
  for (var t = 0; t < 8; t++) {
    let cc = Coord(pix.c, pix.y, pix.x + t);
    for (var r = 0; r < min(i32(D_ROWS), rows_left); r++) {
      store(m0 + r, col0 + t, cc, 0, acc[t][r / 4][r % 4]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PASS 2, the weight gradient, the same way: conv2d_gemm's C[m, col] = sum_k A[m, k] B[k, col]
// with m = c_out, col = tap (c, i, j), k = pixel (n, y, x), split over k as there (workgroup z
// sums k in [z * k_chunk, (z + 1) * k_chunk) into slice z of `out`):
//
//   dW[m, c, i, j] = sum_{n,y,x} dY[n, m, y, x] * X[n, c, y + i - 1, x + j - 1]
//
// k advances 8 pixels of one row at a time (k_chunk is a multiple of 16 and W of 8, so a block
// never leaves its row or its slice). Lane l owns the three taps j of DW_PAIRS kernel rows (c, i)
// and reads, per block, the 10 values x0-1..x0+8 of each of its image rows with four aligned vec4
// loads; the 16 rows of A (dY at the block's 8 pixels) come two vec4s per own row, the rest by
// subgroupShuffle. A workgroup computes 16 rows x 8 * DW_PAIRS * 3 columns. The fma chain of each
// output runs over k in increasing order, as in the GEMM kernels: the same bits.

const DW_PAIRS = 3u;

@group(0) @binding(2) var<storage, read> mat4: array<vec4<f32>>;

@compute @workgroup_size(D_LANES)
fn conv3x3_direct_weight(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
  let group = i32(workgroup_index(wid, nwg));
  if (group >= params.row_groups * params.col_groups) { return; }
  let m0 = (group / params.col_groups) * i32(D_ROWS);
  let p0 = ((group % params.col_groups) * i32(D_LANES) + i32(lane)) * i32(DW_PAIRS);
  let pairs = params.c_in * 3;
  let h = params.height;
  let w = params.width;
  // This lane's kernel rows (c, i) (clamped: a lane past the last computes garbage it never stores).
  var chan: array<i32, DW_PAIRS>;
  var krow: array<i32, DW_PAIRS>;
  for (var u = 0; u < i32(DW_PAIRS); u++) {
    let p = min(p0 + u, pairs - 1);
    chan[u] = p / 3;
    krow[u] = p - 3 * chan[u];
  }
  var rows: array<i32, 2>;
  for (var r = 0; r < 2; r++) { rows[r] = min(m0 + i32(lane) + 8 * r, params.gemm_m - 1); }

  let split = i32(wid.z);
  let k_begin = split * params.k_chunk;
  let k_end = min(params.gemm_k, k_begin + params.k_chunk);
  var pix = coord_of(k_begin, h, w);
  var acc: array<array<vec4<f32>, 4>, 3 * DW_PAIRS>; // [3u + j][q]
  for (var k = k_begin; k < k_end; k += 8) {
    // A: dY[n, row, y, x0..x0+7] for this lane's two rows.
    var own: array<array<vec4<f32>, 2>, 2>;
    for (var r = 0; r < 2; r++) {
      let q = (((pix.c * params.c_out + rows[r]) * h + pix.y) * w + pix.x) / 4;
      own[r][0] = mat4[q];
      own[r][1] = mat4[q + 1];
    }
    // B: seg[u][v] = X[n, chan[u], y + krow[u] - 1, x0 - 4 + v], zero outside the image.
    var seg: array<array<f32, 16>, DW_PAIRS>;
    for (var u = 0; u < i32(DW_PAIRS); u++) {
      let y = pix.y + krow[u] - 1;
      let inside = (y >= 0) & (y < h);
      let q0 = (((pix.c * params.c_in + chan[u]) * h + select(0, y, inside)) * w + pix.x) / 4;
      let left = inside & (pix.x > 0);
      let right = inside & (pix.x + 8 < w);
      let v0 = select(vec4(0.0), img4[select(q0, q0 - 1, left)], left);
      let v1 = select(vec4(0.0), img4[q0], inside);
      let v2 = select(vec4(0.0), img4[q0 + 1], inside);
      let v3 = select(vec4(0.0), img4[select(q0, q0 + 2, right)], right);
      seg[u] = array<f32, 16>(v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w,
                              v2.x, v2.y, v2.z, v2.w, v3.x, v3.y, v3.z, v3.w);
    }
    for (var t = 0u; t < 8u; t++) {
      for (var q = 0u; q < 4u; q++) {
        // Rows 4q..4q+3 at pixel x0 + t: lane (4q + e) % 8, own row (4q + e) / 8.
        let a = vec4(subgroupShuffle(own[(4u * q) / 8u][t / 4u][t % 4u], (4u * q) % 8u),
                     subgroupShuffle(own[(4u * q + 1u) / 8u][t / 4u][t % 4u], (4u * q + 1u) % 8u),
                     subgroupShuffle(own[(4u * q + 2u) / 8u][t / 4u][t % 4u], (4u * q + 2u) % 8u),
                     subgroupShuffle(own[(4u * q + 3u) / 8u][t / 4u][t % 4u], (4u * q + 3u) % 8u));
        for (var u = 0u; u < DW_PAIRS; u++) {
          for (var j = 0u; j < 3u; j++) {
            acc[3u * u + j][q] = fma(a, vec4(seg[u][3u + t + j]), acc[3u * u + j][q]);
          }
        }
      }
    }
    // The next 8 pixels: x0 + 8, wrapping to the next row and image.
    let wrap_x = pix.x + 8 == w;
    let y = pix.y + select(0, 1, wrap_x);
    let wrap_y = y == h;
    pix = Coord(pix.c + select(0, 1, wrap_y), select(y, 0, wrap_y), select(pix.x + 8, 0, wrap_x));
  }

  let rows_left = params.gemm_m - m0;
  for (var u = 0; u < i32(DW_PAIRS); u++) {
    if (p0 + u >= pairs) { break; }
    for (var j = 0; j < 3; j++) {
      let col = (p0 + u) * 3 + j;
      for (var r = 0; r < min(i32(D_ROWS), rows_left); r++) {
        store(m0 + r, col, Coord(0, 0, 0), split, acc[3 * u + j][r / 4][r % 4]);
      }
    }
  }
}
