// A seeded synthetic image dataset for tests and smoke runs: each class has a smooth random
// pattern per channel (a sum of two plane waves), and each image is its class's pattern plus
// Gaussian pixel noise, clipped to 0..255; the train and test splits share the patterns.
// Everything is a pure function of the seed (hashes of counters, random.ts), so two calls with
// the same options give identical bytes.
import type { ImageDataset } from './dataset.js';
import type { Split } from './idx.js';
import { deriveSeed, hash, normal, unit } from './random.js';

export interface SyntheticOptions {
  n: number;
  classes?: number;
  /** [C, H, W]; default [3, 32, 32]. */
  shape?: readonly [number, number, number];
  /** Fixes the class patterns (the task) and the noise. */
  seed?: number;
  /** The train and test splits share the patterns and draw different noise. */
  split?: Split;
  /** Pixel noise standard deviation in 0..255 units (default 40): larger is harder. */
  noise?: number;
  name?: string;
}

export function syntheticDataset(opts: SyntheticOptions): ImageDataset {
  const { n, classes = 10, shape = [3, 32, 32], seed = 0, split = 'train', noise = 40 } = opts;
  const [c, h, w] = shape;
  const plane = h * w;
  const patternSeed = deriveSeed(seed, 1);
  const noiseSeed = deriveSeed(seed, split === 'train' ? 2 : 3);

  // patterns[k][ch]: 128 + 50 (sin(wave 1) + sin(wave 2)), each wave with a random direction,
  // a frequency of 0.5 to 2 cycles per image and a random phase.
  const patterns = new Float64Array(classes * c * plane);
  for (let k = 0; k < classes * c; k++) {
    const waves = [0, 1].map((j) => {
      const r = (m: number) => unit(hash(patternSeed, 8 * k + 4 * j + m));
      const theta = 2 * Math.PI * r(0);
      const freq = (2 * Math.PI * (0.5 + 1.5 * r(1))) / Math.max(h, w);
      return { fy: freq * Math.sin(theta), fx: freq * Math.cos(theta), phase: 2 * Math.PI * r(2) };
    });
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let v = 128;
        for (const { fy, fx, phase } of waves) v += 50 * Math.sin(fy * y + fx * x + phase);
        patterns[k * plane + y * w + x] = v;
      }
    }
  }

  const size = c * plane;
  const images = new Uint8Array(n * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % classes; // balanced classes; loaders shuffle
    labels[i] = k;
    for (let j = 0; j < size; j++) {
      const v = patterns[k * size + j]! + noise * normal(noiseSeed, i * size + j);
      images[i * size + j] = Math.min(255, Math.max(0, Math.round(v)));
    }
  }

  // Per-channel statistics of x / 255 from the patterns and the noise level (clipping aside), so
  // both splits normalize alike and normalized inputs have mean ~0 and std ~1.
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    let s2 = 0;
    for (let k = 0; k < classes; k++) {
      for (let j = 0; j < plane; j++) {
        const v = patterns[(k * c + ch) * plane + j]! / 255;
        s += v;
        s2 += v * v;
      }
    }
    const count = classes * plane;
    const m = s / count;
    mean.push(m);
    std.push(Math.sqrt(Math.max(s2 / count - m * m, 0) + (noise / 255) ** 2) || 1);
  }

  return { name: opts.name ?? `synthetic-${split}`, shape: [n, c, h, w], images, labels, classes, mean, std };
}
