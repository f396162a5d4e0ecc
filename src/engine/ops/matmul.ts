// Batched matrix product with either operand transposed, and its gradient.
//
//   matmul(a, b):                 a [..., M, K] x b [..., K, N] -> [..., M, N]
//   matmul(a, b, {transA: true}): a is [..., K, M] and is used as its transpose (likewise transB)
// Batch axes must be equal, or one operand may have none (it is shared by every batch entry).
// Gradient: dA = g B^T, dB = A^T g, each a matmul with transposes folded into strides (no copies),
// summed over the batch when an operand was shared.
//
// Several kernels compute the same product (MATMUL_VARIANTS); which one is fastest depends on the
// adapter, so `tuneMatmul()` times them once per runtime (tune.ts) and matmulInto uses the winner.
import matmulNaiveWgsl from '../../shaders/matmul_naive.wgsl';
import matmulRegblockWgsl from '../../shaders/matmul_regblock.wgsl';
import matmulSubgroupWgsl from '../../shaders/matmul_subgroup.wgsl';
import matmulTiledWgsl from '../../shaders/matmul_tiled.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { envVar } from '../env.js';
import { record } from '../autograd.js';
import { Kernel, grid1d, hasSubgroupsOf, launch, runtime } from '../runtime.js';
import { Tensor, sameShape } from '../tensor.js';
import { pickFastest, tunedChoice, type TuneResult } from '../tune.js';
import { full } from './creation.js';
import { sum } from './reduce.js';
import { shapeString } from './util.js';

const naiveKernel = new Kernel('matmul_naive', matmulNaiveWgsl);
const tiledKernel = new Kernel('matmul_tiled', [gridWgsl, matmulTiledWgsl]);
const regblockKernel = new Kernel('matmul_regblock', [gridWgsl, matmulRegblockWgsl]);
const subgroupKernel = new Kernel('matmul_subgroup', [gridWgsl, matmulSubgroupWgsl]);

/**
 * The kernels matmulInto can run (a kernel lab in the spirit of llm.c's dev/cuda: each is checked
 * against the same float64 reference and timed by `neuralign bench matmul`):
 *   naive     one invocation per output, no reuse of loads: the readable reference
 *   tiled     64 x 64 tiles in workgroup memory, 4 x 4 outputs per invocation: GPUs
 *   tiled128  128 x 128 tiles in workgroup memory, 8 x 8 outputs per invocation: large GPU problems
 *   regblock  no workgroup memory, 8 x 16 outputs per invocation: CPU adapters (llvmpipe)
 *   subgroup  regblock sharing loads of A by subgroup shuffles, 16 x 16 outputs per invocation:
 *             CPU adapters with subgroups (lavapipe); needs subgroups of at least 8 invocations
 */
export const MATMUL_VARIANTS = ['naive', 'tiled', 'tiled128', 'regblock', 'subgroup'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/** Outputs per invocation of matmul_regblock.wgsl (its TM and TN) and its workgroup shape. */
const REGBLOCK = { rows: 8, cols: 16, wx: 4, wy: 2 };
/** Rows per workgroup (R) of matmul_subgroup.wgsl, its workgroup size, and its column quads per
 * invocation (TN4): 4, or 2 when B is stored [N, K] and read as vec4s along K (measured fastest). */
const SUBGROUP = { rows: 16, lanes: 8, quads: 4, quadsK4: 2 };

/** Whether `variant` can run on the current device (subgroup needs the feature and 8-wide subgroups). */
export function matmulVariantAvailable(variant: MatmulVariant): boolean {
  return variant !== 'subgroup' || hasSubgroupsOf(SUBGROUP.lanes);
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** The problem a kernel sees: sizes and element strides of both operands. */
export interface MatmulProblem {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Elements between batch entries of A and B (0: shared). */
  batchA: number;
  batchB: number;
}

export function matmulProblem(a: Tensor, b: Tensor, opts: MatmulOptions): { problem: MatmulProblem; outShape: number[] } {
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need rank >= 2, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error('matmul: expects f32 tensors');
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [M, Ka] = transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = transB ? [bc, br] : [br, bc];
  if (Ka !== Kb) {
    throw new Error(`matmul: inner sizes differ: ${shapeString(a.shape)}${transA ? 'ᵀ' : ''} x ${shapeString(b.shape)}${transB ? 'ᵀ' : ''}`);
  }
  const batchShapeA = a.shape.slice(0, -2);
  const batchShapeB = b.shape.slice(0, -2);
  let batchShape: number[];
  if (batchShapeA.length === 0) batchShape = [...batchShapeB];
  else if (batchShapeB.length === 0) batchShape = [...batchShapeA];
  else if (sameShape(batchShapeA, batchShapeB)) batchShape = [...batchShapeA];
  else throw new Error(`matmul: batch axes ${shapeString(batchShapeA)} and ${shapeString(batchShapeB)} differ`);
  const batch = batchShape.reduce((p, d) => p * d, 1);
  return {
    problem: {
      M, N, K: Ka, batch, transA, transB,
      batchA: batchShapeA.length ? M * Ka : 0,
      batchB: batchShapeB.length ? Ka * N : 0,
    },
    outShape: [...batchShape, M, N],
  };
}

function checkVariant(name: string, from: string): MatmulVariant {
  if (!(MATMUL_VARIANTS as readonly string[]).includes(name)) {
    throw new Error(`${from}: unknown matmul variant '${name}' (one of ${MATMUL_VARIANTS.join(', ')})`);
  }
  return name as MatmulVariant;
}

function checkAvailable(variant: MatmulVariant): MatmulVariant {
  if (!matmulVariantAvailable(variant)) {
    throw new Error(`matmul variant '${variant}' needs subgroups of at least ${SUBGROUP.lanes} invocations, which this adapter lacks`);
  }
  return variant;
}

let forcedVariant: MatmulVariant | undefined;

/** Forces one variant for every matmul (tests, benchmarks); undefined returns to the automatic choice. */
export function setMatmulVariant(variant: MatmulVariant | undefined): void {
  forcedVariant = variant === undefined ? undefined : checkVariant(variant, 'setMatmulVariant');
}

/**
 * The variant matmul uses now: one forced by setMatmulVariant or NEURALIGN_MATMUL=<variant>, else
 * the one tuneMatmul() measured fastest on this runtime, else a guess from the adapter type:
 * regblock on CPU adapters (subgroup is faster where available, but llvmpipe takes seconds to
 * compile each of its pipelines, which short runs such as tests should not pay), tiled on GPUs.
 */
export function matmulVariant(): MatmulVariant {
  if (forcedVariant) return forcedVariant;
  const env = envVar('NEURALIGN_MATMUL')?.trim();
  if (env) return checkVariant(env, 'NEURALIGN_MATMUL');
  return tunedChoice<MatmulVariant>('matmul')?.choice ?? (runtime().info.isCPU ? 'regblock' : 'tiled');
}

/**
 * Times the candidate variants on a size x size x size product (queue completion awaited) and
 * makes the fastest the default for this runtime; later calls return the first result. Commands
 * call it once after init(). With a variant forced, nothing is timed.
 */
export async function tuneMatmul(size = 512): Promise<TuneResult<MatmulVariant>> {
  if (forcedVariant || envVar('NEURALIGN_MATMUL')?.trim()) return { choice: matmulVariant(), ms: {} };
  // naive is the reference only. Best guess first, so clear losers are cut after one run.
  const order: MatmulVariant[] = runtime().info.isCPU
    ? ['subgroup', 'regblock', 'tiled', 'tiled128']
    : ['tiled128', 'tiled', 'subgroup', 'regblock'];
  const candidates = order.filter(matmulVariantAvailable);
  // Constant inputs: timing does not depend on values, and the RNG stream stays untouched.
  const a = full([size, size], 0.5);
  const b = full([size, size], 0.25);
  const out = new Tensor([size, size], 'f32');
  try {
    const { problem } = matmulProblem(a, b, {});
    return await pickFastest('matmul', candidates, (v) => matmulInto(a, b, out, problem, v));
  } finally {
    for (const t of [a, b, out]) t.dispose();
  }
}

/** Element strides of A and B as the kernels read them (see matmul_naive.wgsl). */
function strides(p: MatmulProblem): [aM: number, aK: number, bK: number, bN: number] {
  return [p.transA ? 1 : p.K, p.transA ? p.M : 1, p.transB ? 1 : p.N, p.transB ? p.K : 1];
}

/** Records the kernel launch for `p` writing C into `out` (no gradient). */
export function matmulInto(a: Tensor, b: Tensor, out: Tensor, p: MatmulProblem, variant = matmulVariant()): void {
  if (out.size === 0) return;
  checkAvailable(variant);
  const [aM, aK, bK, bN] = strides(p);
  if (variant === 'naive') {
    launch(naiveKernel, {
      op: 'matmul',
      params: (w) => w.u32(p.M, p.N, p.K, p.batch, aM, aK, p.batchA, bK, bN, p.batchB),
      buffers: [a.buffer, b.buffer, out.buffer],
      shapes: [a.shape, b.shape, out.shape],
      workgroups: [Math.ceil(p.N / 16), Math.ceil(p.M / 16), p.batch],
    });
    return;
  }
  // Vec4 loads need the contiguous axis to be a multiple of 4 long (then every offset is aligned).
  const aVec4 = p.transA && p.M % 4 === 0 ? 1 : 0;
  const bVec4 = !p.transB && p.N % 4 === 0 ? 1 : 0;
  let kernel: Kernel;
  let constants: Record<string, number>;
  let tileM: number;
  let tileN: number;
  let flags = 0;
  if (variant === 'regblock') {
    kernel = regblockKernel;
    constants = { WX: REGBLOCK.wx, WY: REGBLOCK.wy, A_VEC4: aVec4, B_VEC4: bVec4 };
    tileM = REGBLOCK.rows * REGBLOCK.wy;
    tileN = REGBLOCK.cols * REGBLOCK.wx;
  } else if (variant === 'subgroup') {
    const bK4 = p.transB && p.K % 4 === 0;
    const quads = bK4 ? SUBGROUP.quadsK4 : SUBGROUP.quads;
    kernel = subgroupKernel;
    constants = { B_VEC4: bVec4, B_K4: bK4 ? 1 : 0, TN4: quads };
    tileM = SUBGROUP.rows;
    tileN = 4 * quads * SUBGROUP.lanes;
  } else {
    const big = variant === 'tiled128' ? 2 : 1;
    kernel = tiledKernel;
    constants = { TM4: big, TN4: big, BK: 16 / big };
    tileM = tileN = 64 * big;
    flags = (p.transA ? 1 : 0) | (p.transB ? 2 : 0) | (aVec4 ? 4 : 0) | (bVec4 ? 8 : 0);
  }
  const tilesM = Math.ceil(p.M / tileM);
  const tilesN = Math.ceil(p.N / tileN);
  launch(kernel, {
    op: 'matmul',
    constants,
    params: (w) => w.u32(p.M, p.N, p.K, p.batch, aM, aK, p.batchA, bK, bN, p.batchB, tilesN, tilesM, flags),
    buffers: [a.buffer, b.buffer, out.buffer],
    shapes: [a.shape, b.shape, out.shape],
    // One workgroup per output tile, linear over (column tile, row tile, batch entry).
    workgroups: grid1d(tilesN * tilesM * p.batch, 1),
  });
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { problem, outShape } = matmulProblem(a, b, opts);
  const out = new Tensor(outShape, 'f32');
  matmulInto(a, b, out, problem);
  const { transA, transB } = problem;
  return record(out, 'matmul', [a, b], (g) => {
    // C = op(A) op(B). dop(A) = g op(B)^T, dop(B) = op(A)^T g; transposing back to A's own layout
    // swaps the operands: if A is stored transposed, dA = op(B) g^T, and likewise for B.
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      ga = transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
      if (problem.batchA === 0 && ga.rank > 2) ga = sum(ga, [...Array(ga.rank - 2).keys()]);
    }
    if (b.requiresGrad) {
      gb = transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
      if (problem.batchB === 0 && gb.rank > 2) gb = sum(gb, [...Array(gb.rank - 2).keys()]);
    }
    return [ga, gb];
  });
}
