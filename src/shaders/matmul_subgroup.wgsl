// Batched matrix product without workgroup memory, register-blocked, sharing A through subgroup
// shuffles: the variant for CPU adapters that offer subgroups (Mesa's lavapipe).
//
//   C[z, m, n] = sum_k op(A)[z, m, k] * op(B)[z, k, n]
//
// Layout: element (m, k) of op(A) at a[z * batch_a + m * a_m + k * a_k], element (k, n) of op(B)
// at b[z * batch_b + k * b_k + n * b_n]; the strides express a transposed operand (A stored
// [K, M] has a_m = 1) and a shared operand (batch_a = 0). C is contiguous [batch, M, N].
//
// Why: llvmpipe runs 8 invocations as the lanes of one SIMD register, and a buffer load whose
// address differs between lanes costs a scalar load per lane, while a subgroup shuffle is a single
// register permute. So a workgroup is one subgroup of 8 lanes that computes an R x (8 * TN) tile:
// every lane owns TN = 4 * TN4 columns and all R rows. At each k, lane l loads only rows l, l + 8,
// ... of op(A)[:, k] and receives the other rows from its neighbours by subgroupShuffle; it loads
// its own TN values of op(B)[k, :], then does R * TN multiply-adds (a rank-1 update). Loads per
// multiply-add fall to (R / 8 + TN) / (R * TN).
//
// B is loaded one of three ways (override constants, set by the host from the layout):
//   B_VEC4  B stored [K, N] with N % 4 == 0: four columns at one k are one aligned vec4;
//   B_K4    B stored [N, K] with K % 4 == 0: one vec4 holds four k of one column, so the loop
//           takes four k at a time and regroups the vec4s into columns (x Wᵀ of a Linear layer);
//   else    four scalar loads per four columns.
//
// Limits: the host runs this only when the adapter's subgroups have at least 8 invocations, so the
// 8 invocations of a workgroup form one subgroup whose invocation ids are the local indices. Any
// M, N, K >= 1 and batch; rows and columns past the edge are clamped on load and not stored. The
// grid is linear over (column tile, row tile, batch), folded into 2-D past 65535 workgroups.
enable subgroups;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  a_m: u32, a_k: u32, batch_a: u32,
  b_k: u32, b_n: u32, batch_b: u32,
  tiles_n: u32, tiles_m: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override B_VEC4: bool = false;
override B_K4: bool = false;
// Columns per lane in quads: TN4 <= TN4_MAX (the host uses 4, and 2 with B_K4, whose vec4s along
// K take registers).
override TN4: u32 = 4u;
override TN: u32 = 4u * TN4;

const LANES = 8u;
const R = 16u;
const TN4_MAX = 4u;

fn b_at(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

// op(B)[k, n..n+3] (n already clamped so that n + 3 < N when B_VEC4; columns clamped here otherwise).
fn b_quad(base: u32, k: u32, n: u32) -> vec4<f32> {
  if (B_VEC4) {
    return b[(base + k * params.b_k + n) >> 2u];
  }
  let last = params.N - 1u;
  let o = base + k * params.b_k;
  return vec4(b_at(o + min(n, last) * params.b_n), b_at(o + min(n + 1u, last) * params.b_n),
              b_at(o + min(n + 2u, last) * params.b_n), b_at(o + min(n + 3u, last) * params.b_n));
}

// acc[i][j] += op(A)[m0 + i, k] * bq[j] for all R rows i: the lanes' own rows of A at k are
// loaded and shared by shuffles.
fn rank1(acc: ptr<function, array<array<vec4<f32>, TN4_MAX>, R>>, row_a: ptr<function, array<u32, R / LANES>>,
         k: u32, bq: ptr<function, array<vec4<f32>, TN4_MAX>>) {
  var own: array<f32, R / LANES>;
  for (var r = 0u; r < R / LANES; r++) { own[r] = a[(*row_a)[r] + k * params.a_k]; }
  for (var i = 0u; i < R; i++) {
    let ai = vec4(subgroupShuffle(own[i / LANES], i % LANES));
    for (var j = 0u; j < TN4; j++) { (*acc)[i][j] = fma(ai, (*bq)[j], (*acc)[i][j]); }
  }
}

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lane: u32) {
  let tile = workgroup_index(wid, nwg);
  let tn = tile % params.tiles_n;
  let tm = (tile / params.tiles_n) % params.tiles_m;
  let z = tile / (params.tiles_n * params.tiles_m);
  if (z >= params.batch) { return; }
  let M = params.M;
  let N = params.N;
  let m0 = tm * R;
  let n0 = (tn * LANES + lane) * TN;
  let base_b = z * params.batch_b;
  // Offsets of this lane's rows of A (m0 + lane + 8 r, clamped to the last row) at k = 0.
  var row_a: array<u32, R / LANES>;
  for (var r = 0u; r < R / LANES; r++) {
    row_a[r] = z * params.batch_a + min(m0 + lane + LANES * r, M - 1u) * params.a_m;
  }

  var acc: array<array<vec4<f32>, TN4_MAX>, R>;
  var bq: array<vec4<f32>, TN4_MAX>;
  if (B_K4) {
    // Offsets of this lane's columns of B (clamped to the last column) at k = 0.
    var col_b: array<u32, 4u * TN4_MAX>;
    for (var j = 0u; j < TN; j++) { col_b[j] = base_b + min(n0 + j, N - 1u) * params.b_n; }
    for (var k = 0u; k < params.K; k += 4u) {
      var bk: array<vec4<f32>, 4u * TN4_MAX>;
      for (var j = 0u; j < TN; j++) { bk[j] = b[(col_b[j] + k) >> 2u]; }
      for (var kk = 0u; kk < 4u; kk++) {
        for (var j = 0u; j < TN4; j++) {
          bq[j] = vec4(bk[4u * j][kk], bk[4u * j + 1u][kk], bk[4u * j + 2u][kk], bk[4u * j + 3u][kk]);
        }
        rank1(&acc, &row_a, k + kk, &bq);
      }
    }
  } else {
    // Quads past the edge read the last whole quad instead (B_VEC4: N is a multiple of 4).
    var nb: array<u32, TN4_MAX>;
    for (var j = 0u; j < TN4; j++) { nb[j] = select(n0 + 4u * j, min(n0 + 4u * j, N - 4u), B_VEC4); }
    for (var k = 0u; k < params.K; k++) {
      for (var j = 0u; j < TN4; j++) { bq[j] = b_quad(base_b, k, nb[j]); }
      rank1(&acc, &row_a, k, &bq);
    }
  }

  // Unrolled (constant bounds): a loop with a run-time bound compiles 10x faster, but makes acc an
  // indexed array in memory, which slowed the loop above by a third here (not so in
  // matmul_regblock.wgsl).
  let base_c = z * M * N;
  for (var i = 0u; i < R; i++) {
    let m = m0 + i;
    if (m >= M) { break; }
    for (var j = 0u; j < TN4; j++) {
      let n = n0 + 4u * j;
      let o = base_c + m * N + n;
      let v = acc[i][j];
      if (n < N) { c[o] = v.x; }
      if (n + 1u < N) { c[o + 1u] = v.y; }
      if (n + 2u < N) { c[o + 2u] = v.z; }
      if (n + 3u < N) { c[o + 3u] = v.w; }
    }
  }
}
