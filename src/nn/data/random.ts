// The engine's counter-based hash (src/shaders/random.wgsl, augment.wgsl) in JavaScript, for the
// CPU-side randomness of the data pipeline (shuffling, synthetic data) and for tests that
// recompute the GPU's draws. Every value is a pure function of (seed, counter).

/** O'Neill's PCG-RXS-M-XS output permutation of a 32-bit word, as in random.wgsl. */
export function pcg(v: number): number {
  const state = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** random.wgsl's hash(counter) under `seed`: a uniformly distributed 32-bit word. */
export function hash(seed: number, counter: number): number {
  return pcg((pcg(counter >>> 0) ^ pcg((seed + 0x9e3779b9) >>> 0)) >>> 0);
}

/** random.wgsl's uniform in [0, 1): the top 24 bits of the hash. */
export function unit(h: number): number {
  return (h >>> 8) / 16777216;
}

/** A standard normal from counter `counter` (Box-Muller, as random.wgsl's rand_normal). */
export function normal(seed: number, counter: number): number {
  const h = hash(seed, counter);
  const u1 = 1 - unit(h);
  const u2 = unit(pcg((h ^ 0x85ebca6b) >>> 0));
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A seed for stream `stream` (an epoch, a purpose) derived from `seed`. */
export function deriveSeed(seed: number, stream: number): number {
  return hash(seed, stream);
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates), a pure function of the seed. */
export function permutation(n: number, seed: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    // j uniform in [0, i]: all 32 bits of the hash, so the bias is below (i + 1) / 2^32.
    const j = Math.floor((hash(seed, i) / 4294967296) * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
