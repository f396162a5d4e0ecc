// Tensor creation on the GPU.
//
//   fill:   out[i] = params.word                (any dtype: the word is the value's bit pattern)
//   arange: out[i] = start + i * step           (DTYPE 0 f32, 1 i32)
//   add_i32: out[i] += word as i32, in place    (counters such as batch norm's num_batches_tracked)
//
// out is a contiguous array of params.n 32-bit words. Tiling: 256 invocations per workgroup in a
// grid-stride loop over the elements (lib/grid.wgsl: an invocation takes i, i + S, i + 2S, ...
// for S the grid's invocations), so the host bounds the grid (gridStride, src/engine/runtime.ts).

struct Params {
  n: u32,
  word: u32,
  start: f32,
  step: f32,
}

override DTYPE: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    out[i] = params.word;
  }
}

@compute @workgroup_size(256)
fn arange(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    let v = params.start + f32(i) * params.step;
    if (DTYPE == 1u) {
      out[i] = bitcast<u32>(i32(round(v)));
    } else {
      out[i] = bitcast<u32>(v);
    }
  }
}

@compute @workgroup_size(256)
fn add_i32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
    out[i] = bitcast<u32>(bitcast<i32>(out[i]) + bitcast<i32>(params.word));
  }
}
