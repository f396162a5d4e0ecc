// One fused, in-place SGD step on one parameter tensor, with torch.optim.SGD's semantics:
//   g = grad + weight_decay * param
//   momentum != 0:  buf = first_step ? g : momentum * buf + (1 - dampening) * g
//                   g   = nesterov ? g + momentum * buf : buf
//   param = param - lr * g
// lr and the other scalars travel in params, so a schedule changing lr every step reuses the
// same pipeline. sgd (no momentum) leaves the momentum buffer unbound.
//
// Layout: param, grad and buf are contiguous arrays of params.n elements (any shape). Tiling: 256
// invocations per workgroup in a grid-stride loop over the elements (lib/grid.wgsl: an
// invocation takes i, i + S, i + 2S, ... for S the grid's invocations), so the host bounds the
// grid (gridStride, src/engine/runtime.ts).

struct Params {
  n: u32,
  first_step: u32,  // 1: the momentum buffer is uninitialized; it becomes g
  nesterov: u32,
  lr: f32,
  momentum: f32,
  dampening: f32,
  weight_decay: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let p = param[i];
    let g = grad[i] + params.weight_decay * p;
    param[i] = p - params.lr * g;
  }
}

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let p = param[i];
    var g = grad[i] + params.weight_decay * p;
    var b = g;
    if (params.first_step == 0u) { b = params.momentum * buf[i] + (1.0 - params.dampening) * g; }
    buf[i] = b;
    if (params.nesterov != 0u) { g = g + params.momentum * b; } else { g = b; }
    param[i] = p - params.lr * g;
  }
}
