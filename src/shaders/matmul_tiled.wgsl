// Batched matrix product tiled in workgroup memory and register-blocked: the variant for GPUs.
//
//   C[z, m, n] = sum_k op(A)[z, m, k] * op(B)[z, k, n]
//
// Layout: element (m, k) of op(A) at a[z * batch_a + m * a_m + k * a_k], element (k, n) of op(B)
// at b[z * batch_b + k * b_k + n * b_n]; the strides express a transposed operand (A stored
// [K, M] has a_m = 1) and a shared operand (batch_a = 0). C is contiguous [batch, M, N].
//
// Tiling: a workgroup of 16 x 16 invocations computes a BM x BN tile of C, BM = 64 * TM4 and
// BN = 64 * TN4. It walks K in slabs of BK: all invocations copy the BM x BK slab of op(A) and the
// BK x BN slab of op(B) into workgroup memory, both stored k-major as vec4 along M and N, then
// each invocation accumulates its (4 * TM4) x (4 * TN4) block of outputs with one vec4 read of A
// and one of B per 16 multiply-adds. An invocation's rows are 4 consecutive rows every 64 (and
// likewise columns), so the 16 invocations along x read 16 consecutive vec4 of B.
//
// Copies: every slot of the workgroup tiles is a quad, four consecutive elements along M (of A) or
// N (of B) at one k. A quad is one aligned vec4 load when that axis is contiguous in memory and a
// multiple of 4 long (flag A_VEC4: A stored [K, M], M % 4 == 0; B_VEC4: B stored [K, N],
// N % 4 == 0), else four scalar loads. Consecutive invocations take consecutive quads along the
// axis that is contiguous in memory (TRANS_A: A stored [K, M]; TRANS_B: B stored [N, K]), so loads
// coalesce. These layout flags are uniform values in params, not override constants: the branches
// cost nothing measurable on a GPU, and one pipeline per tile shape serves every layout.
// Elements outside the matrices load as 0, so K needs no padding; outputs outside are not stored.
//
// Limits: any M, N, K and batch; TM4 and TN4 are 1 or 2. Workgroup memory is about
// BK * 256 * (TM4 + TN4) bytes: 8 KiB for the 64 x 64 tile with BK = 16 and for the 128 x 128
// tile with BK = 8. The grid is linear over (column tile, row tile, batch), folded into 2-D past
// 65535 workgroups.

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  a_m: u32, a_k: u32, batch_a: u32,
  b_k: u32, b_n: u32, batch_b: u32,
  tiles_n: u32, tiles_m: u32,
  flags: u32,  // TRANS_A | TRANS_B | A_VEC4 | B_VEC4
}

const TRANS_A = 1u;
const TRANS_B = 2u;
const A_VEC4 = 4u;
const B_VEC4 = 8u;

fn has(flag: u32) -> bool { return (params.flags & flag) != 0u; }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TM4: u32 = 1;
override TN4: u32 = 1;
override BK: u32 = 16;

// Quads along M (N) in one k row of the A (B) tile; derived, never set by the host. Rows are
// SA (SB) quads apart, one more than they hold, so that invocations storing one column of quads
// (consecutive k) hit different memory banks.
override QM: u32 = 16u * TM4;
override QN: u32 = 16u * TN4;
override SA: u32 = QM + 1u;
override SB: u32 = QN + 1u;

var<workgroup> tile_a: array<vec4<f32>, BK * SA>;
var<workgroup> tile_b: array<vec4<f32>, BK * SB>;

fn a_at(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn b_at(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

// op(A)[m..m+3, k], zero outside the matrix.
fn a_quad(base: u32, m: u32, k: u32) -> vec4<f32> {
  let M = params.M;
  if (k >= params.K || m >= M) { return vec4(0.0); }
  if (has(A_VEC4)) {
    return a[(base + k * params.a_k + m) >> 2u];
  }
  let o = base + k * params.a_k + m * params.a_m;
  var q = vec4(a_at(o), 0.0, 0.0, 0.0);
  if (m + 1u < M) { q.y = a_at(o + params.a_m); }
  if (m + 2u < M) { q.z = a_at(o + 2u * params.a_m); }
  if (m + 3u < M) { q.w = a_at(o + 3u * params.a_m); }
  return q;
}

// op(B)[k, n..n+3], zero outside the matrix.
fn b_quad(base: u32, k: u32, n: u32) -> vec4<f32> {
  let N = params.N;
  if (k >= params.K || n >= N) { return vec4(0.0); }
  if (has(B_VEC4)) {
    return b[(base + k * params.b_k + n) >> 2u];
  }
  let o = base + k * params.b_k + n * params.b_n;
  var q = vec4(b_at(o), 0.0, 0.0, 0.0);
  if (n + 1u < N) { q.y = b_at(o + params.b_n); }
  if (n + 2u < N) { q.z = b_at(o + 2u * params.b_n); }
  if (n + 3u < N) { q.w = b_at(o + 3u * params.b_n); }
  return q;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile = workgroup_index(wid, nwg);
  let tn = tile % params.tiles_n;
  let tm = (tile / params.tiles_n) % params.tiles_m;
  let z = tile / (params.tiles_n * params.tiles_m);
  // z is the same for the whole workgroup, so this return keeps barriers in uniform control flow.
  if (z >= params.batch) { return; }
  let m0 = tm * 64u * TM4;
  let n0 = tn * 64u * TN4;
  let base_a = z * params.batch_a;
  let base_b = z * params.batch_b;

  let trans_a = has(TRANS_A);
  let trans_b = has(TRANS_B);

  var acc: array<array<vec4<f32>, 2>, 8>;
  for (var k0 = 0u; k0 < params.K; k0 += BK) {
    // Copy the slabs: BK * QM quads of A and BK * QN of B, 256 invocations at a time.
    for (var s = li; s < BK * QM; s += 256u) {
      let kk = select(s % BK, s / QM, trans_a);
      let q = select(s / BK, s % QM, trans_a);
      tile_a[kk * SA + q] = a_quad(base_a, m0 + 4u * q, k0 + kk);
    }
    for (var s = li; s < BK * QN; s += 256u) {
      let kk = select(s / QN, s % BK, trans_b);
      let q = select(s % QN, s / BK, trans_b);
      tile_b[kk * SB + q] = b_quad(base_b, k0 + kk, n0 + 4u * q);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var i4 = 0u; i4 < TM4; i4++) {
        let aq = tile_a[kk * SA + 16u * i4 + lid.y];
        for (var j4 = 0u; j4 < TN4; j4++) {
          let bq = tile_b[kk * SB + 16u * j4 + lid.x];
          acc[4u * i4][j4] = fma(vec4(aq.x), bq, acc[4u * i4][j4]);
          acc[4u * i4 + 1u][j4] = fma(vec4(aq.y), bq, acc[4u * i4 + 1u][j4]);
          acc[4u * i4 + 2u][j4] = fma(vec4(aq.z), bq, acc[4u * i4 + 2u][j4]);
          acc[4u * i4 + 3u][j4] = fma(vec4(aq.w), bq, acc[4u * i4 + 3u][j4]);
        }
      }
    }
    workgroupBarrier();
  }

  let M = params.M;
  let N = params.N;
  let base_c = z * M * N;
  for (var i4 = 0u; i4 < TM4; i4++) {
    for (var r = 0u; r < 4u; r++) {
      let m = m0 + 64u * i4 + 4u * lid.y + r;
      if (m >= M) { continue; }
      for (var j4 = 0u; j4 < TN4; j4++) {
        let n = n0 + 64u * j4 + 4u * lid.x;
        let o = base_c + m * N + n;
        let v = acc[4u * i4 + r][j4];
        if (n < N) { c[o] = v.x; }
        if (n + 1u < N) { c[o + 1u] = v.y; }
        if (n + 2u < N) { c[o + 2u] = v.z; }
        if (n + 3u < N) { c[o + 3u] = v.w; }
      }
    }
  }
}
