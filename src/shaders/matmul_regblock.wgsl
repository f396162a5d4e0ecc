// Batched matrix product without workgroup memory, register-blocked: the variant for CPU adapters
// (Mesa's llvmpipe/lavapipe), where workgroup barriers are expensive and every buffer load that
// differs between invocations costs a scalar load per SIMD lane.
//
//   C[z, m, n] = sum_k op(A)[z, m, k] * op(B)[z, k, n]
//
// Layout: element (m, k) of op(A) at a[z * batch_a + m * a_m + k * a_k], element (k, n) of op(B)
// at b[z * batch_b + k * b_k + n * b_n]; the strides express a transposed operand (A stored
// [K, M] has a_m = 1) and a shared operand (batch_a = 0). C is contiguous [batch, M, N].
//
// Parallelization: each invocation owns a block of TM x TN outputs (TM rows, TN = 4 * TN4 columns,
// held as vec4 along N) and walks all of K, one k at a time, as an outer product: it loads the
// TM values op(A)[m.., k] and the TN values op(B)[k, n..] once and does TM * TN multiply-adds with
// them (a rank-1 update), so loads per multiply-add fall as the block grows. Workgroups are
// WX x WY invocations (x along N) covering (WY * TM) x (WX * TN) outputs; the grid is linear over
// (column tile, row tile, batch), folded into 2-D past 65535 workgroups.
//
// Loads come as quads, four consecutive elements along M (of A) or N (of B). A quad is one aligned
// vec4 load when that axis is contiguous in memory and a multiple of 4 long (A_VEC4: A stored
// [K, M] with M % 4 == 0; B_VEC4: B stored [K, N] with N % 4 == 0), else four scalar loads. (For
// B stored [N, K], loading vec4s along K four k at a time, as matmul_subgroup.wgsl does, measured
// slower here than scalar loads.)
//
// Limits: any M, N, K >= 1 and batch; rows and columns past the edge are clamped on load (so every
// load is in bounds) and not stored. Each output is one float32 sum over k in order.

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  a_m: u32, a_k: u32, batch_a: u32,
  b_k: u32, b_n: u32, batch_b: u32,
  tiles_n: u32, tiles_m: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override WX: u32 = 8;
override WY: u32 = 8;
override A_VEC4: bool = false;
override B_VEC4: bool = false;

const TM = 8u;
const TN4 = 4u;
const TN = 4u * TN4;

// One element of a buffer declared as vec4s (index i counts floats).
fn a_at(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn b_at(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

// op(A)[m..m+3, k] (m already clamped so that m + 3 < M when A_VEC4; rows clamped here otherwise).
fn a_quad(base: u32, m: u32, k: u32) -> vec4<f32> {
  if (A_VEC4) {
    return a[(base + k * params.a_k + m) >> 2u];
  }
  let last = params.M - 1u;
  let o = base + k * params.a_k;
  return vec4(a_at(o + min(m, last) * params.a_m), a_at(o + min(m + 1u, last) * params.a_m),
              a_at(o + min(m + 2u, last) * params.a_m), a_at(o + min(m + 3u, last) * params.a_m));
}

// op(B)[k, n..n+3], like a_quad.
fn b_quad(base: u32, k: u32, n: u32) -> vec4<f32> {
  if (B_VEC4) {
    return b[(base + k * params.b_k + n) >> 2u];
  }
  let last = params.N - 1u;
  let o = base + k * params.b_k;
  return vec4(b_at(o + min(n, last) * params.b_n), b_at(o + min(n + 1u, last) * params.b_n),
              b_at(o + min(n + 2u, last) * params.b_n), b_at(o + min(n + 3u, last) * params.b_n));
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile = workgroup_index(wid, nwg);
  let tn = tile % params.tiles_n;
  let tm = (tile / params.tiles_n) % params.tiles_m;
  let z = tile / (params.tiles_n * params.tiles_m);
  if (z >= params.batch) { return; }
  let M = params.M;
  let N = params.N;
  let m0 = (tm * WY + lid.y) * TM;
  let n0 = (tn * WX + lid.x) * TN;
  let base_a = z * params.batch_a;
  let base_b = z * params.batch_b;
  // Quads past the edge read the last whole quad instead (vec4 paths: M or N is a multiple of 4).
  var ma: array<u32, TM / 4u>;
  for (var i = 0u; i < TM / 4u; i++) { ma[i] = select(m0 + 4u * i, min(m0 + 4u * i, M - 4u), A_VEC4); }
  var nb: array<u32, TN4>;
  for (var j = 0u; j < TN4; j++) { nb[j] = select(n0 + 4u * j, min(n0 + 4u * j, N - 4u), B_VEC4); }

  var acc: array<array<vec4<f32>, TN4>, TM>;
  for (var k = 0u; k < params.K; k++) {
    var bq: array<vec4<f32>, TN4>;
    for (var j = 0u; j < TN4; j++) { bq[j] = b_quad(base_b, k, nb[j]); }
    for (var i4 = 0u; i4 < TM / 4u; i4++) {
      let aq = a_quad(base_a, ma[i4], k);
      for (var j = 0u; j < TN4; j++) {
        acc[4u * i4][j] = fma(vec4(aq.x), bq[j], acc[4u * i4][j]);
        acc[4u * i4 + 1u][j] = fma(vec4(aq.y), bq[j], acc[4u * i4 + 1u][j]);
        acc[4u * i4 + 2u][j] = fma(vec4(aq.z), bq[j], acc[4u * i4 + 2u][j]);
        acc[4u * i4 + 3u][j] = fma(vec4(aq.w), bq[j], acc[4u * i4 + 3u][j]);
      }
    }
  }

  // A loop with a run-time bound, so that the compiler keeps it a loop: unrolled, the scattered
  // stores were two thirds of the code, and llvmpipe compiled the pipeline 3x slower.
  let base_c = z * M * N;
  let rows = select(0u, min(TM, M - m0), m0 < M);
  for (var i = 0u; i < rows; i++) {
    let m = m0 + i;
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
