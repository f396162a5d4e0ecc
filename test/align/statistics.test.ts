// Streamed activation statistics: the correlation accumulated over several batches on the GPU
// equals a float64 reference computed on the concatenated activations (every spatial position a
// sample, population statistics, eps 1e-5 on each std), also when the activations sit at a mean
// of 1000 (where E[a^2] - mu^2 in float32 would lose every digit); the ::2 subsampling rule for
// maps wider than 32; and the mean matched correlation.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { CrossStatistics, layerReports, meanMatchedCorrelation, samplesByUnits, type PermutationSpec } from '../../src/align/index.js';
import { TEST_SEED, assertClose, poolInUse, rng, setupEngine, toTensor } from '../helpers.js';

const test = suite('align statistics');
test.before(setupEngine);

/** [samples, units] rows (float64) of an [N, C, H, W] or [N, C] array: sample = (n, h, w). */
function rowsOf(data: ArrayLike<number>, shape: number[]): number[][] {
  const [n, c, h = 1, w = 1] = shape as [number, number, number?, number?];
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) rows.push(Array.from({ length: c }, (_, ch) => data[((i * c + ch) * h + y) * w + x]!));
    }
  }
  return rows;
}

/** Float64 correlation of the columns of a with the columns of b (population std + 1e-5). */
function correlationRef(a: number[][], b: number[][]): Float64Array {
  const s = a.length;
  const stats = (m: number[][]) => {
    const k = m[0]!.length;
    const mu = Array.from({ length: k }, (_, j) => m.reduce((p, r) => p + r[j]!, 0) / s);
    const sd = mu.map((u, j) => Math.sqrt(m.reduce((p, r) => p + (r[j]! - u) ** 2, 0) / s));
    return { k, mu, sd };
  };
  const sa = stats(a);
  const sb = stats(b);
  const out = new Float64Array(sa.k * sb.k);
  for (let i = 0; i < sa.k; i++) {
    for (let j = 0; j < sb.k; j++) {
      let cov = 0;
      for (let r = 0; r < s; r++) cov += (a[r]![i]! - sa.mu[i]!) * (b[r]![j]! - sb.mu[j]!);
      out[i * sb.k + j] = cov / s / ((sa.sd[i]! + 1e-5) * (sb.sd[j]! + 1e-5));
    }
  }
  return out;
}

/**
 * Batches of A [n, C, ...] and B [n, D, ...] activations, B's units mixtures of A's plus noise
 * (so correlations spread over (-1, 1)), all shifted by `offset`, rounded to float32.
 */
function makeBatches(sizes: number[], c: number, d: number, spatial: number[], offset: number, rand: () => number) {
  const mix = Array.from({ length: d * c }, () => rand() * 2 - 1);
  const plane = spatial.reduce((p, v) => p * v, 1);
  return sizes.map((n) => {
    const a = new Float64Array(n * c * plane);
    const b = new Float64Array(n * d * plane);
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < plane; p++) {
        const units = Array.from({ length: c }, (_, ch) => (rand() * 2 - 1) * (1 + ch));
        units.forEach((v, ch) => (a[(i * c + ch) * plane + p] = Math.fround(offset + v)));
        for (let j = 0; j < d; j++) {
          let v = 0.3 * (rand() * 2 - 1);
          for (let ch = 0; ch < c; ch++) v += mix[j * c + ch]! * units[ch]!;
          b[(i * d + j) * plane + p] = Math.fround(offset + 0.5 * v);
        }
      }
    }
    return { a, b, shapeA: [n, c, ...spatial], shapeB: [n, d, ...spatial] };
  });
}

async function streamedVsReference(spatial: number[], offset: number, atol: number, what: string): Promise<void> {
  const rand = rng(TEST_SEED);
  const c = 7;
  const d = 5;
  const batches = makeBatches([3, 1, 6, 2], c, d, spatial, offset, rand);
  const stats = new CrossStatistics(c, d);
  for (const bt of batches) {
    E.tidy(() => stats.update(toTensor(bt.a, bt.shapeA), toTensor(bt.b, bt.shapeB)));
  }
  const plane = spatial.reduce((p, v) => p * v, 1);
  assert.is(stats.count, 12 * plane, `${what}: samples counted`);
  const corr = stats.correlation();
  const got = await corr.toArray();
  corr.dispose();
  const rowsA = batches.flatMap((bt) => rowsOf(bt.a, bt.shapeA));
  const rowsB = batches.flatMap((bt) => rowsOf(bt.b, bt.shapeB));
  const expected = correlationRef(rowsA, rowsB);
  assertClose(got, expected, 0, atol, what);
  // The statistics are not trivial: some strong correlations of both signs.
  assert.ok(expected.some((v) => v > 0.3) && expected.some((v) => v < -0.3), `${what}: correlations spread`);
  stats.dispose();
}

test('streamed correlation of [N, C, H, W] activations over 4 batches equals the float64 reference', async () => {
  await streamedVsReference([3, 5], 0, 2e-6, 'NCHW');
});

test('streamed correlation of [N, C] activations equals the float64 reference', async () => {
  await streamedVsReference([], 0, 2e-6, '[N, C]');
});

test('activations at mean 1000 (spread ~1): the centred merge keeps the correlation to 1e-4', async () => {
  // Float32 spacing at 1000 is 6e-5, so the inputs themselves carry ~1e-4 relative noise; a
  // sum-of-squares formula would cancel 1e6 against 1e6 and miss by whole units.
  await streamedVsReference([3, 5], 1000, 1e-4, 'offset 1000');
});

test('maps wider than 32 are subsampled [:, :, ::2, ::2]; 32 wide and narrower are not', async () => {
  const rand = rng(TEST_SEED + 1);
  for (const [h, w, sub] of [[35, 34, true], [5, 32, false], [3, 33, true]] as const) {
    const shape = [2, 3, h, w];
    const data = Float64Array.from({ length: 2 * 3 * h * w }, () => Math.fround(rand()));
    const got = await E.tidy(() => samplesByUnits(toTensor(data, shape))).toArray();
    const hs = sub ? Math.ceil(h / 2) : h;
    const ws = sub ? Math.ceil(w / 2) : w;
    const expected: number[] = [];
    for (let n = 0; n < 2; n++) {
      for (let y = 0; y < hs; y++) {
        for (let x = 0; x < ws; x++) {
          for (let ch = 0; ch < 3; ch++) {
            const [yy, xx] = sub ? [2 * y, 2 * x] : [y, x];
            expected.push(data[((n * 3 + ch) * h + yy) * w + xx]!);
          }
        }
      }
    }
    assertClose(got, expected, 0, 0, `${h}x${w}`);
  }
});

test('mean matched correlation: the diagonal before, C[i][perm[i]] after', () => {
  const c = [0.1, 0.9, 0.0, 0.8, 0.2, 0.1, 0.0, 0.3, 0.7];
  assert.ok(Math.abs(meanMatchedCorrelation(c, 3) - (0.1 + 0.2 + 0.7) / 3) < 1e-12);
  assert.ok(Math.abs(meanMatchedCorrelation(c, 3, [1, 0, 2]) - (0.9 + 0.8 + 0.7) / 3) < 1e-12);
});

test('layer reports: diagonal mean before, matched mean after (over all and over signalling pairs), dead units counted', () => {
  const spec: PermutationSpec = {
    architecture: 'toy',
    groups: [{ name: 'g', size: 3, members: [], solveFrom: ['l'] }],
    layers: [{ name: 'l', group: 'g', terms: [] }],
    auxiliary: [],
  };
  const c = Float32Array.from([0.25, 0.5, 0, 0.75, 0.25, 0, 0, 0, 0]);
  const [r] = layerReports(
    { spec, images: 1, matrices: new Map([['l', c]]), stdA: new Map([['l', Float32Array.from([1, 1, 0])]]), stdB: new Map([['l', Float32Array.from([1, 2, 3])]]) },
    new Map([['g', Int32Array.from([1, 0, 2])]]),
  );
  // Signalling pairs: (0, 1) and (1, 0); unit 2 of A is dead (and so is its pair).
  assert.equal(r, { layer: 'l', group: 'g', units: 3, before: 0.5 / 3, after: 1.25 / 3, afterSignalling: 1.25 / 2, signalling: 2, deadA: 1, deadB: 0, deadMatching: 'weights' });
});

test('accumulating many batches holds GPU memory flat', () => {
  const stats = new CrossStatistics(4, 6);
  const step = () => E.tidy(() => stats.update(E.randn([3, 4, 5, 5]), E.randn([3, 6, 5, 5])));
  step();
  const held = poolInUse();
  for (let i = 0; i < 5; i++) step();
  assert.is(poolInUse(), held, 'same bytes held after 5 more batches');
  stats.dispose();
});

test.run();
