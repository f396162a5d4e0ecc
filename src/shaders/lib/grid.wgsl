// src/shaders/lib/ holds WGSL functions that more than one kernel file uses; WGSL has no include,
// so a Kernel prepends them ([library, ..., source], src/engine/runtime.ts). The rule for the
// files above: one op family per file, its passes as entry points (pool.wgsl: max and average,
// forward and backward; index.wgsl: index_select, pick, one_hot), compiled once per source. A
// file of its own is kept for a pass with its own bindings and workgroup memory
// (batchnorm_stats, batchnorm_backward) and for each of the interchangeable matmul kernels that
// tuneMatmul chooses between by timing (matmul_*.wgsl).
//
// Flat indices in the grids that grid1d (src/engine/runtime.ts) launches: past 65535 workgroups
// in x it folds the count into a 2-D grid, so a kernel recovers its flat position from both axes.
// Prepended by the Kernel ([gridWgsl, source]) to every kernel that reads `num_workgroups`.
//
//   workgroup_index(wid, nwg)             wid.y * nwg.x + wid.x
//   thread_index(wid, nwg, lid, size)     workgroup_index * size + lid, for @workgroup_size(size)
//   grid_stride(nwg, size)                nwg.x * nwg.y * size, the invocations in the grid
//
// Element-wise kernels loop with a grid stride over their params.n elements, so the host bounds
// the grid (gridStride in src/engine/runtime.ts) and each invocation takes several elements:
//
//   for (var i = thread_index(wid, nwg, lid, 256u); i < params.n; i += grid_stride(nwg, 256u)) {
//     out[i] = f(x[i]);
//   }
//
// Each element is still computed by exactly one invocation, in the same way, so results do not
// depend on the grid. Limit: n + grid_stride < 2^32 (i must not wrap), i.e. n <= 2^31 whatever
// the grid; storage buffers are smaller than that.

fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
  return workgroup_index(wid, nwg) * size + lid;
}

fn grid_stride(nwg: vec3<u32>, size: u32) -> u32 {
  return nwg.x * nwg.y * size;
}
