// Walking one channel of a contiguous [N, C, S] tensor in steps of WG elements, as batch norm's
// per-channel reductions do (batchnorm_stats.wgsl, batchnorm_backward.wgsl; each defines
// `params.spatial`, `params.channels` and the override WG): element j = n * S + s of channel c
// lives at offset (n * C + c) * S + s. Dividing j by S at every step is an integer division per
// element, which llvmpipe scalarizes per SIMD lane; when S >= WG a step wraps into the next image
// at most once, so the position is carried instead. The elements and their order are the same.
//
//   var w = walk_at(c, j0);   ...x[w.o]...   w = walk_next(c, w);   // j0, j0 + WG, j0 + 2 WG, ...

struct Walk { j: u32, s: u32, o: u32 }

fn walk_at(c: u32, j: u32) -> Walk {
  let n = j / params.spatial;
  let s = j - n * params.spatial;
  return Walk(j, s, (n * params.channels + c) * params.spatial + s);
}

fn walk_next(c: u32, w: Walk) -> Walk {
  if (params.spatial < WG) { return walk_at(c, w.j + WG); }
  let s = w.s + WG;
  let wrap = s >= params.spatial;
  // Wrapping from (n, c, s) to (n + 1, c, s - S) skips the other C - 1 channels' planes.
  return Walk(w.j + WG, select(s, s - params.spatial, wrap), w.o + WG + select(0u, (params.channels - 1u) * params.spatial, wrap));
}
