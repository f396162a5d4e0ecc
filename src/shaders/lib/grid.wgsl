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

fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
  return workgroup_index(wid, nwg) * size + lid;
}
