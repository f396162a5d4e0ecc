// Counter-based random bits shared by random.wgsl, dropout.wgsl and augment.wgsl (prepended to
// their source by the Kernel: WGSL has no include). Pure 32-bit integer arithmetic, so the same
// (seed, counter) gives the same bits on every backend.
//
//   pcg(v)                   O'Neill's PCG-RXS-M-XS output permutation of one 32-bit word
//   counter_hash(seed, c)    pcg(pcg(c) ^ pcg(seed + 0x9e3779b9))
//   unit(h)                  (h >> 8) / 2^24, uniform in [0, 1) with 24 random bits

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn counter_hash(seed: u32, counter: u32) -> u32 {
  return pcg(pcg(counter) ^ pcg(seed + 0x9e3779b9u));
}

fn unit(h: u32) -> f32 {
  return f32(h >> 8u) * (1.0 / 16777216.0);
}
