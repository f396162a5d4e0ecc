// Batched matrix product, the plain reference version: C[b, m, n] = sum_k A[b, m, k] * B[b, k, n].
//
// Layout: A element (b, m, k) at a[b * batch_a + m * a_m + k * a_k], B element (b, k, n) at
// b[b * batch_b + k * b_k + n * b_n]; these strides express a transposed operand (a_m = 1) or a
// broadcast batch (batch_a = 0). C is contiguous [batch, M, N]. One invocation per output element,
// 16x16 invocations per workgroup, workgroup z = batch. No tiling: this version exists to be read
// and to check the tuned kernels against (see matmul.ts for the variants the engine picks from).
// Limits: M, N below 16 * 65535 and batch at most 65535 (no grid folding, unlike the tuned ones).

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  a_m: u32, a_k: u32, batch_a: u32,
  b_k: u32, b_n: u32, batch_b: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  let z = gid.z;
  if (m >= params.M || n >= params.N) { return; }
  var acc = 0.0;
  let a0 = z * params.batch_a + m * params.a_m;
  let b0 = z * params.batch_b + n * params.b_n;
  for (var k = 0u; k < params.K; k++) {
    acc += a[a0 + k * params.a_k] * b[b0 + k * params.b_k];
  }
  c[(z * params.M + m) * params.N + n] = acc;
}
