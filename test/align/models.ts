// Shared by the align tests: small instances of every architecture, random BN vectors and biases
// (at initialization they are constants, which any permutation leaves unchanged), and the
// relative measure used to compare outputs.
import * as E from '../../src/engine/index.js';
import { Dropout } from '../../src/nn/layers/dropout.js';
import { GoogLeNet, MLP, ResNet32, TinyTen, VGG16 } from '../../src/nn/models/index.js';
import { copyInto, type Module } from '../../src/nn/module.js';
import type { PermutationGroup, PermutationSpec } from '../../src/align/index.js';
import { rng } from '../helpers.js';

export const ARCHITECTURES = ['mlp', 'tinyten', 'resnet32', 'vgg16', 'googlenet'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** Small widths so a forward takes well under a second on llvmpipe. */
export function smallModel(name: Architecture, seed: number, numClasses = 7): Module {
  const config = { inChannels: 3, numClasses, seed };
  switch (name) {
    case 'mlp':
      return new MLP({ inFeatures: 3 * 32 * 32, hidden: [23, 17], numClasses, seed });
    case 'tinyten':
      return new TinyTen({ ...config, width: 0.5 });
    case 'resnet32':
      return new ResNet32({ ...config, width: 0.5 });
    case 'vgg16':
      return new VGG16({ ...config, width: 0.125 });
    case 'googlenet':
      return new GoogLeNet({ ...config, width: 0.125 });
  }
}

/**
 * Replaces every tensor with random values: conv and linear weights N(0, 2 / fan_in) (He: keeps
 * activations of order 1 through the depth, so every layer shows in the logits; GoogLeNet's own
 * N(0, 0.01^2) makes eval-mode logits nearly constant); BN weights and running variances uniform
 * in [0.5, 1.5]; biases, BN biases and running means uniform in [-0.3, 0.3].
 */
export function randomizeWeights(model: Module, seed: number): void {
  const random = rng(seed);
  const generator = new E.Generator(seed);
  E.noGrad(() => {
    for (const [name, t] of model.stateDict()) {
      if (t.dtype !== 'f32') continue;
      let fresh: E.Tensor;
      if (t.rank >= 2) fresh = E.randn(t.shape, 0, Math.sqrt(2 / (t.size / t.shape[0]!)), { generator });
      else {
        const positive = name.endsWith('.weight') || name.endsWith('running_var');
        fresh = E.tensor(Float32Array.from({ length: t.size }, () => (positive ? 0.5 + random() : 0.6 * random() - 0.3)), t.shape);
      }
      copyInto(t, fresh);
      fresh.dispose();
    }
  });
}

/** Training mode with dropout off: batch-norm batch statistics, a deterministic function. */
export function trainWithoutDropout(model: Module): void {
  model.train();
  for (const [, m] of model.namedModules()) if (m instanceof Dropout) m.training = false;
}

/** max |a - b| / max |b|: a difference relative to the output's scale, not to each entry. */
export function relativeMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return Number.isNaN(diff) || a.length !== b.length ? Infinity : diff / scale;
}


/**
 * Kills `count(size)` units of every group of `spec` (chosen by `random`), deterministically: in
 * each of the group's own rows (axis-0 members), a weight matrix's rows become -|w| and a bias
 * (a layer's or a batch norm's) becomes -20, so the pre-activation is far below 0 on any input
 * of these tests (post-ReLU inputs are >= 0; images and BN outputs are of order 1) and the ReLU
 * never fires. Their weights stay distinct, as a trained network's dead units are. BN weights and
 * running statistics are left alone. Returns the killed units per group.
 */
export async function forceDeadUnits(model: Module, spec: PermutationSpec, count: (size: number) => number, random: () => number): Promise<Map<string, number[]>> {
  const state = model.stateDict();
  const killed = new Map<string, number[]>();
  for (const g of spec.groups) {
    const units = Array.from({ length: g.size }, (_, i) => i);
    for (let i = g.size - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [units[i], units[j]] = [units[j]!, units[i]!];
    }
    const dead = units.slice(0, Math.min(g.size, count(g.size))).sort((x, y) => x - y);
    killed.set(g.name, dead);
    for (const m of g.members) {
      if (m.axis !== 0) continue;
      const t = state.get(m.param)!;
      const isMatrix = t.rank >= 2 && m.param.endsWith('.weight');
      const isBias = t.rank === 1 && m.param.endsWith('.bias');
      if (!isMatrix && !isBias) continue;
      const values = Float32Array.from(await t.toArray('f32'));
      const rowSize = t.size / t.shape[0]!;
      const inner = m.inner ?? 1;
      for (const u of dead) {
        for (let p = 0; p < inner; p++) {
          const row = (m.offset ?? 0) + u * inner + p;
          for (let k = row * rowSize; k < (row + 1) * rowSize; k++) values[k] = isMatrix ? -Math.abs(values[k]!) : -20;
        }
      }
      E.noGrad(() => {
        const fresh = E.tensor(values, t.shape);
        copyInto(t, fresh);
        fresh.dispose();
      });
    }
  }
  return killed;
}

/**
 * Two distinct units correlated above this are a tie the data cannot break: late layers of a
 * random deep network see nearly rank-one inputs, and every ReLU active on all samples is then an
 * affine function of one direction (correlation 1 up to the eps). The correlation's eps even
 * prefers the wider of two such units, so a swap there is the right answer to the objective.
 */
export const DUPLICATE_CORRELATION = 0.99;

/**
 * A's units of group `g` correlated at or above DUPLICATE_CORRELATION, in some layer the group is
 * solved from, with a unit of B other than their own copy (B's unit inverse[i], inverse being the
 * inverse of the permutation applied to make B).
 */
export function duplicatedUnits(g: PermutationGroup, matrices: Map<string, Float32Array>, inverse: Int32Array): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < g.size; i++) {
    for (const l of g.solveFrom) {
      const row = matrices.get(l)!.subarray(i * g.size, (i + 1) * g.size);
      if (row.some((v, j) => j !== inverse[i] && v >= DUPLICATE_CORRELATION)) out.add(i);
    }
  }
  return out;
}

/** For an n x n matrix p (row-major): the largest |row or column sum - 1|, and the smallest entry. */
export function sumsAndMin(p: ArrayLike<number>, n: number): { sumError: number; min: number } {
  let sumError = 0;
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    let r = 0;
    let c = 0;
    for (let j = 0; j < n; j++) {
      r += p[i * n + j]!;
      c += p[j * n + i]!;
      min = Math.min(min, p[i * n + j]!);
    }
    sumError = Math.max(sumError, Math.abs(r - 1), Math.abs(c - 1));
  }
  return { sumError, min };
}
