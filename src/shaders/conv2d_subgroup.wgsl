// The implicit-GEMM convolution of conv2d_gemm.wgsl (same Params, bindings, loaders and passes;
// prepended to this file by the Kernel) with A shared across a subgroup instead of packed: the
// variant for CPU adapters with subgroups (Mesa's lavapipe).
//
//   C[m, col] = sum_k A[m, k] * B[k, col]        (see conv2d_gemm.wgsl for A, B and the passes)
//
// Why: gemm_registers gives all the invocations of a workgroup the same rows, so every lane loads
// the same 4*TM4 values of A at each k (vec4 loads, but on llvmpipe a load is a scalar load per
// lane whatever its address). Here a workgroup is one subgroup of 8 lanes computing R rows x
// 8*TN columns; lane l loads only rows l, l + 8, ... of A[:, k] straight from `mat` (no packing
// pass) and receives the other rows from its neighbours by subgroupShuffle (a register permute on
// llvmpipe). B is gathered per lane as in gemm_registers: TN columns n0 + lane + 8t. Loads per k
// per lane fall from TM4 vec4s + TN scalars to R/8 + TN scalars, for the same R * TN
// multiply-adds.
//
// Every C element is still one float32 fma chain over k in increasing order, so this kernel's
// results are bitwise those of gemm_registers (and of gemm_tiled up to its k order within a tile).
//
// Layout of the accumulators: acc[t][q] holds rows 4q..4q+3 of column t (as gemm_registers).
// Limits: the host runs this only on subgroups of at least 8 invocations, so the 8 invocations of
// a workgroup are one subgroup with invocation id = local index. R in {8, 16, 32}, TN <= 8.
enable subgroups;

const SG_LANES = 8u;
// Rows per workgroup (a multiple of 8, at most 32) and columns per lane (at most 8).
override SG_R: u32 = 16u;
override SG_TN: u32 = 8u;

@compute @workgroup_size(SG_LANES)
fn gemm_subgroup(@builtin(local_invocation_index) lane: u32, @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let group = i32(workgroup_index(wid, nwg));
  if (group >= params.row_groups * params.col_groups) { return; }
  let m0 = (group / params.col_groups) * i32(SG_R);
  let n0 = (group % params.col_groups) * i32(SG_LANES * SG_TN) + i32(lane);
  var cols: array<Coord, 8>;
  for (var t = 0; t < i32(SG_TN); t++) { cols[t] = col_coord(min(n0 + t * i32(SG_LANES), params.gemm_n - 1)); }
  // This lane's rows of A (clamped; rows past M compute garbage that is never stored).
  var rows: array<i32, 4>;
  for (var r = 0; r < i32(SG_R / SG_LANES); r++) { rows[r] = min(m0 + i32(lane) + 8 * r, params.gemm_m - 1); }

  let split = i32(wid.z);
  let k_begin = split * params.k_chunk;
  let k_end = min(params.gemm_k, k_begin + params.k_chunk);
  var acc: array<array<vec4<f32>, 8>, 8>; // [t][q]
  var kc = k_coord(k_begin);
  for (var k = k_begin; k < k_end; k++) {
    var own: array<f32, 4>;
    for (var r = 0; r < i32(SG_R / SG_LANES); r++) { own[r] = load_a(rows[r], k, kc); }
    var b: array<f32, 8>;
    for (var t = 0; t < i32(SG_TN); t++) { b[t] = load_b(kc, cols[t]); }
    for (var q = 0u; q < SG_R / 4u; q++) {
      // Rows 4q..4q+3 live in lanes (4q + c) % 8, slot (4q + c) / 8.
      let a = vec4(subgroupShuffle(own[(4u * q) / SG_LANES], (4u * q) % SG_LANES),
                   subgroupShuffle(own[(4u * q + 1u) / SG_LANES], (4u * q + 1u) % SG_LANES),
                   subgroupShuffle(own[(4u * q + 2u) / SG_LANES], (4u * q + 2u) % SG_LANES),
                   subgroupShuffle(own[(4u * q + 3u) / SG_LANES], (4u * q + 3u) % SG_LANES));
      for (var t = 0; t < i32(SG_TN); t++) { acc[t][q] = fma(a, vec4(b[t]), acc[t][q]); }
    }
    kc = k_next(kc);
  }

  let rows_left = params.gemm_m - m0;
  for (var t = 0; t < i32(SG_TN); t++) {
    let col = n0 + t * i32(SG_LANES);
    if (col >= params.gemm_n) { break; }
    for (var r = 0; r < min(i32(SG_R), rows_left); r++) {
      store(m0 + r, col, cols[t], split, acc[t][r / 4][r % 4]);
    }
  }
}
