// Inverted dropout (torch.nn.functional.dropout): in training, each element is zeroed with
// probability p and the kept ones are scaled by 1 / (1 - p), so the expected output equals the
// input and evaluation needs no rescaling; in evaluation it is the identity.
//
// The mask comes from the engine's counter-based RNG (dropout.wgsl, random.wgsl): element i is
// kept when the generator's uniform for counter offset + i is >= p. The forward pass reserves
// x.size counters of the generator; the backward pass reuses the same (seed, offset), so the
// gradient sees the forward's mask without a stored mask tensor.
import dropoutWgsl from '../../shaders/dropout.wgsl';
import counterRngWgsl from '../../shaders/lib/counter_rng.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { record } from '../autograd.js';
import { Kernel, gridStride, launch } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { Generator } from './creation.js';
import { shapeString } from './util.js';

const dropoutKernel = new Kernel('dropout', [gridWgsl, counterRngWgsl, dropoutWgsl], 'dropout');

/**
 * Used when no generator is given. The engine's default generator (manualSeed) is private to
 * creation.ts, so dropout keeps its own; layers pass theirs explicitly for reproducibility.
 */
const fallbackGenerator = new Generator(0x0d50);

export interface DropoutOptions {
  /** Default true, as torch.nn.functional.dropout. */
  training?: boolean;
  generator?: Generator;
}

function applyMask(src: Tensor, p: number, seed: number, offset: number): Tensor {
  const out = new Tensor(src.shape, 'f32');
  if (out.size === 0) return out;
  launch(dropoutKernel, {
    op: 'dropout',
    params: (w) => w.u32(src.size, seed, offset).f32(p, p === 1 ? 0 : 1 / (1 - p)),
    buffers: [src.buffer, out.buffer],
    shapes: [src.shape],
    workgroups: gridStride(src.size, 256),
  });
  return out;
}

/** out = x * mask / (1 - p) with mask ~ Bernoulli(1 - p) in training; x itself otherwise. */
export function dropout(x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: probability ${p} is not in [0, 1]`);
  if (x.dtype !== 'f32') throw new Error(`dropout: expects f32, got ${x.dtype}${shapeString(x.shape)}`);
  if (!(opts.training ?? true) || p === 0) return x;
  const g = opts.generator ?? fallbackGenerator;
  const seed = g.seed;
  const offset = g.take(x.size);
  const y = applyMask(x, p, seed, offset);
  return record(y, 'dropout', [x], (dy) => [applyMask(dy, p, seed, offset)]);
}
