// matmul against a float64 reference for every kernel variant (each forced in turn, not only the
// one tuning picks): odd non-square sizes, all four transpose combinations, batches with and
// without a shared operand, a long K, outputs poisoned with NaN first; and its gradient by finite
// differences.
//
// Error measure: |c - ref| / sum_k |a_mk b_kn|, the error relative to the sum of the magnitudes of
// the terms. A float32 sum of K products in any order is off by at most about (K + 1) 2^-24 times
// that sum, so the bound holds whatever order a kernel adds in, while plain relative error
// |c - ref| / |ref| would be unbounded where terms cancel.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { TEST_SEED, gradCheck, randomArray, rng, setupEngine, sizeOf, testUnless, toTensor, weightsFor } from '../helpers.js';

const test = suite('matmul');
const rand = rng(TEST_SEED);
test.before(setupEngine);
test.after.each(() => E.setMatmulVariant(undefined));

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Batch axes of A and B ([] for none: the operand is shared by every batch entry). */
  batchA?: number[];
  batchB?: number[];
}

function operandShapes(c: Case): { aShape: number[]; bShape: number[]; outShape: number[] } {
  const { M, N, K, batchA = [], batchB = [] } = c;
  const aShape = [...batchA, ...(c.transA ? [K, M] : [M, K])];
  const bShape = [...batchB, ...(c.transB ? [N, K] : [K, N])];
  const batch = batchA.length ? batchA : batchB;
  return { aShape, bShape, outShape: [...batch, M, N] };
}

/** C = op(A) op(B) in float64, and the error scale sum_k |a_mk b_kn| of each output. */
function reference(a: ArrayLike<number>, b: ArrayLike<number>, c: Case): { out: Float64Array; scale: Float64Array } {
  const { M, N, K, transA, transB, batchA = [], batchB = [] } = c;
  const batch = Math.max(sizeOf(batchA), sizeOf(batchB));
  const strideA = batchA.length ? M * K : 0;
  const strideB = batchB.length ? K * N : 0;
  const out = new Float64Array(batch * M * N);
  const scale = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        let abs = 0;
        for (let k = 0; k < K; k++) {
          const av = a[z * strideA + (transA ? k * M + m : m * K + k)]!;
          const bv = b[z * strideB + (transB ? n * K + k : k * N + n)]!;
          s += av * bv;
          abs += Math.abs(av * bv);
        }
        out[(z * M + m) * N + n] = s;
        scale[(z * M + m) * N + n] = abs;
      }
    }
  }
  return { out, scale };
}

function describe(c: Case): string {
  const t = `${c.transA ? 'Aᵀ' : 'A'}${c.transB ? 'Bᵀ' : 'B'}`;
  return `${c.M}x${c.N}x${c.K} ${t} batch [${c.batchA ?? []}] x [${c.batchB ?? []}]`;
}

/** Runs one case on the GPU and checks every output against the reference (see the top comment). */
async function check(c: Case, tol: number, what: string): Promise<void> {
  const { aShape, bShape, outShape } = operandShapes(c);
  const a = randomArray(sizeOf(aShape), rand);
  const b = randomArray(sizeOf(bShape), rand);
  const ref = reference(a, b, c);
  const got = E.tidy(() => E.matmul(toTensor(a, aShape), toTensor(b, bShape), { transA: c.transA, transB: c.transB }));
  assert.equal([...got.shape], outShape, `${what} ${describe(c)}: shape`);
  const data = await got.toArray();
  got.dispose();
  for (let i = 0; i < ref.out.length; i++) {
    const err = Math.abs(data[i]! - ref.out[i]!) / ref.scale[i]!;
    // NaN: an output the kernel never wrote (outputs start poisoned). 0/0 when all terms are 0.
    if (!(err <= tol) && !(data[i] === ref.out[i])) {
      assert.unreachable(`${what} ${describe(c)}: output ${i} is ${data[i]}, expected ${ref.out[i]} (relative error ${err}, seed ${TEST_SEED})`);
    }
  }
}

const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

/**
 * Sizes (M, N, K): odd, non-square, smaller and larger than the tiles; and multiples of 4, which
 * take the vec4 load paths (M for Aᵀ, N for B, K for Bᵀ in the subgroup kernel).
 */
const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [33, 65, 17],
  [127, 129, 131],
  [36, 68, 9],
  [4, 8, 70],
  [37, 19, 12],
  [5, 70, 8],
];

// Which variants this adapter runs decides which tests are registered as skipped, so the device
// opens while the file loads (setupEngine is idempotent; test.before keeps it for the run).
await setupEngine();

/** Why `variant` cannot run here (subgroup needs the feature and wide enough subgroups), or null. */
function unavailable(variant: E.MatmulVariant): string | null {
  return E.matmulVariantAvailable(variant) ? null : `matmul variant ${variant} is not available on this adapter`;
}

for (const variant of E.MATMUL_VARIANTS) {
  const variantTest = (name: string, fn: () => Promise<void>) =>
    testUnless(test, unavailable(variant), `${variant}: ${name}`, async () => {
      E.setMatmulVariant(variant);
      await fn();
    });

  variantTest('odd sizes, all transposes', async () => {
    for (const [M, N, K] of SIZES) {
      for (const [transA, transB] of TRANSPOSES) await check({ M, N, K, transA, transB }, 1e-5, variant);
    }
  });

  variantTest('batched, shared operands', async () => {
    const cases: Case[] = [
      { M: 7, N: 9, K: 5, batchA: [3], batchB: [3] },
      { M: 12, N: 20, K: 6, batchA: [2, 3], batchB: [2, 3], transA: true },
      { M: 13, N: 6, K: 11, batchA: [5], transB: true },
      { M: 8, N: 4, K: 3, batchA: [3], transA: true },
      { M: 6, N: 17, K: 10, batchB: [4], transA: true, transB: true },
      { M: 70, N: 12, K: 5, batchB: [2] },
    ];
    for (const c of cases) await check(c, 1e-5, variant);
  });

  variantTest('K = 1000, relative error < 1e-4', async () => {
    await check({ M: 37, N: 41, K: 1000 }, 1e-4, variant);
    await check({ M: 12, N: 8, K: 1000, transA: true, transB: true }, 1e-4, variant);
  });

  variantTest('gradient (finite differences, transposes, shared operands)', async () => {
    const [M, N, K] = [3, 5, 4];
    for (const [transA, transB] of TRANSPOSES) {
      for (const [batchA, batchB] of [[[2], []], [[], [2]], [[2], [2]]] as const) {
        const c: Case = { M, N, K, transA, transB, batchA: [...batchA], batchB: [...batchB] };
        const { aShape, bShape, outShape } = operandShapes(c);
        const w = weightsFor(sizeOf(outShape), rand);
        await gradCheck(
          ([a, b]) => E.sum(E.mul(E.matmul(a!, b!, { transA, transB }), toTensor(w, outShape))),
          ([a, b]) => reference(a!, b!, c).out.reduce((s, v, i) => s + v * w[i]!, 0),
          [
            { data: randomArray(sizeOf(aShape), rand), shape: aShape },
            { data: randomArray(sizeOf(bShape), rand), shape: bShape },
          ],
          { what: `${variant} gradient ${describe(c)}` },
        );
      }
    }
  });
}

for (const variant of ['regblock', 'subgroup', 'tiled'] as const) {
  testUnless(test, unavailable(variant), `${variant}: more tiles than one grid dimension holds (folded grid)`, async () => {
    E.setMatmulVariant(variant);
    await check({ M: 1, N: 1, K: 2, batchA: [66000], batchB: [66000] }, 1e-5, variant);
  });
}

test('setMatmulVariant rejects unknown names; tuneMatmul picks a timed candidate', async () => {
  assert.throws(() => E.setMatmulVariant('fast' as E.MatmulVariant), /unknown matmul variant/);
  const result = await E.tuneMatmul(256);
  if (!process.env.NEURALIGN_MATMUL) {
    assert.ok(result.ms[result.choice]! > 0, 'the choice was timed');
    for (const ms of Object.values(result.ms)) assert.ok(ms! >= result.ms[result.choice]!, 'the choice is the fastest');
    assert.is(E.matmulVariant(), result.choice);
  }
});

test.run();
