// Shared test utilities: engine start-up with NaN-poisoned allocations, seeded float64 inputs,
// closeness assertions, and finite-difference gradient checks against float64 references.
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDawn } from '../src/engine/dawn.js';
import { Tensor, backward, clone, gridPolicy, init, mul, poisonNewTensors, runtime, setGridPolicy, sum, tensor, tidy, type GridPolicy, type Shape } from '../src/engine/index.js';

/** Opens the device once per process (Dawn's, as in the CLI) and poisons every new tensor's buffer with NaN. */
export async function setupEngine(): Promise<void> {
  useDawn();
  await init();
  poisonNewTensors(true);
}

/** A skipped test and why; scripts/test.mjs reads the list (globalThis.NEURALIGN_SKIPS) at the end. */
export interface SkippedTest {
  test: string;
  reason: string;
}

const skipped: SkippedTest[] = ((globalThis as { NEURALIGN_SKIPS?: SkippedTest[] }).NEURALIGN_SKIPS ??= []);

/**
 * Registers test `name` in `suite`, or, when `skipReason` is a string (say, a data set that is not
 * installed), registers it as skipped (uvu's test.skip) and records the reason, so the run counts
 * it as skipped, never as passed, and names it with its reason. Decided when the file loads, as
 * uvu requires: a condition on the device needs `await setupEngine()` at the top of the file.
 */
export function testUnless(suite: Test, skipReason: string | null, name: string, fn: () => void | Promise<void>): void {
  if (skipReason === null) {
    suite(name, fn);
    return;
  }
  skipped.push({ test: name, reason: skipReason });
  suite.skip(name, fn);
}

/** mulberry32: a small seeded PRNG for test inputs (the engine's own RNG is tested separately). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fresh seed per run unless TEST_SEED is set, printed on failure by the callers' messages. */
export const TEST_SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** n values uniform in [lo, hi), rounded to float32 so the reference sees exactly the GPU's inputs. */
export function randomArray(n: number, rand: () => number, lo = -1, hi = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(lo + (hi - lo) * rand());
  return out;
}

export function sizeOf(shape: Shape): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** A GPU tensor holding float64 data rounded to f32. */
export function toTensor(data: ArrayLike<number>, shape: Shape): Tensor {
  return tensor(Float32Array.from(data), shape);
}

/** The bit patterns of a tensor's values, for tests that compare two code paths bit for bit. */
export async function bitsOf(t: Tensor): Promise<Uint32Array> {
  const values = await t.toArray();
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Fails at the first element whose bits differ between two code paths' results. */
export function assertSameBits(actual: Uint32Array, expected: Uint32Array, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  const i = actual.findIndex((v, j) => v !== expected[j]);
  assert.is(i, -1, `${what}: element ${i} differs (seed ${TEST_SEED})`);
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise, and that no value is NaN
 * (a NaN means part of the output was never written: tensors start poisoned). atol may be given
 * per element (an error bound that the reference computes with the value).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number | ArrayLike<number> = 0, what = ''): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) assert.unreachable(`${what}: element ${i} is ${a}, expected ${e} (seed ${TEST_SEED})`);
    if (Number.isNaN(e)) continue;
    if (a === e) continue; // also covers equal infinities
    if (!Number.isFinite(a) || !Number.isFinite(e)) assert.unreachable(`${what}: element ${i} is ${a}, expected ${e} (seed ${TEST_SEED})`);
    const excess = Math.abs(a - e) - ((typeof atol === 'number' ? atol : atol[i]!) + rtol * Math.abs(e));
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  if (worstAt >= 0) {
    assert.unreachable(
      `${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (rtol ${rtol}, atol ${typeof atol === 'number' ? atol : atol[worstAt]}, seed ${TEST_SEED})`,
    );
  }
}

export interface GradInput {
  data: Float64Array;
  shape: Shape;
}

/**
 * Finite-difference gradient check. `build` computes a scalar loss from engine tensors; `reference`
 * computes the same loss in float64 from plain arrays. The engine's backward() gradient of every
 * input is compared with central differences (f(x + h) - f(x - h)) / 2h of the float64 reference,
 * so the check measures the engine's gradient code, not float32 rounding of the difference quotient.
 */
export async function gradCheck(
  build: (inputs: Tensor[]) => Tensor,
  reference: (inputs: Float64Array[]) => number,
  inputs: GradInput[],
  opts: { rtol?: number; atol?: number; h?: number; what?: string } = {},
): Promise<void> {
  const { rtol = 1e-3, atol = 1e-4, h = 1e-6, what = 'gradient' } = opts;
  const tensors = inputs.map((x) => {
    const t = toTensor(x.data, x.shape);
    t.requiresGrad = true;
    return t;
  });
  tidy(() => backward(build(tensors)));
  const analytic = await Promise.all(tensors.map((t) => t.grad!.toArray()));
  const arrays = inputs.map((x) => Float64Array.from(x.data));
  inputs.forEach((x, k) => {
    const numeric = new Float64Array(x.data.length);
    for (let i = 0; i < x.data.length; i++) {
      const saved = arrays[k]![i]!;
      arrays[k]![i] = saved + h;
      const up = reference(arrays);
      arrays[k]![i] = saved - h;
      const down = reference(arrays);
      arrays[k]![i] = saved;
      numeric[i] = (up - down) / (2 * h);
    }
    assertClose(analytic[k]!, numeric, rtol, atol, `${what}: input ${k}`);
  });
  for (const t of tensors) {
    t.grad?.dispose();
    t.dispose();
  }
}

/** Sum of out * w for fixed random weights w: a scalar loss whose gradient is w, so every output matters. */
export function weightsFor(n: number, rand: () => number): Float64Array {
  return randomArray(n, rand, -1, 1);
}

// ---------------------------------------------------------------------------------------------
// Float64 references for shape-moving ops and reductions, written index by index (slow and plain).

/** Row-major element strides of `shape`. */
export function stridesOf(shape: Shape): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = s;
    s *= shape[d]!;
  }
  return out;
}

/** The row-major multi-index of flat position i in `shape`. */
export function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

/** data[idx] of a row-major array of `shape`. */
export function readAt(data: ArrayLike<number>, shape: Shape, idx: readonly number[]): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d]! + idx[d]!;
  return data[flat]!;
}

/** A row-major array of `shape` whose element at multi-index idx is f(idx). */
export function tabulate(shape: Shape, f: (idx: number[]) => number): Float64Array {
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(unravel(i, shape));
  return out;
}

/** NumPy broadcast shape of several shapes (no error checking: references get valid shapes). */
export function broadcastShapeRef(...shapes: Shape[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) s.forEach((d, i) => (out[rank - s.length + i] = d === 1 ? out[rank - s.length + i]! : d));
  return out;
}

/** out[i] = f(x0[i0], x1[i1], ...) with NumPy broadcasting of every input to the common shape. */
export function broadcastMap(inputs: { data: ArrayLike<number>; shape: Shape }[], f: (...v: number[]) => number): { shape: number[]; data: Float64Array } {
  const shape = broadcastShapeRef(...inputs.map((x) => x.shape));
  const data = tabulate(shape, (idx) =>
    f(...inputs.map((x) => readAt(x.data, x.shape, idx.slice(idx.length - x.shape.length).map((v, d) => (x.shape[d] === 1 ? 0 : v))))),
  );
  return { shape, data };
}

/** Reduces x over `axes` with f (given the values of one output in row-major order). */
export function reduceRef(
  x: ArrayLike<number>,
  shape: Shape,
  axes: readonly number[],
  f: (values: number[]) => number,
  keepDims = false,
): { shape: number[]; data: Float64Array } {
  const red = new Set(axes.map((a) => (a < 0 ? a + shape.length : a)));
  const keptShape = shape.map((d, i) => (red.has(i) ? 1 : d));
  const buckets: number[][] = Array.from({ length: sizeOf(keptShape) }, () => []);
  for (let i = 0; i < x.length; i++) {
    const idx = unravel(i, shape).map((v, d) => (red.has(d) ? 0 : v));
    let flat = 0;
    for (let d = 0; d < shape.length; d++) flat = flat * keptShape[d]! + idx[d]!;
    buckets[flat]!.push(x[i]!);
  }
  return {
    shape: keepDims ? keptShape : shape.filter((_, d) => !red.has(d)),
    data: Float64Array.from(buckets, f),
  };
}

export const sumOf = (v: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s;
};

/** sum_i a[i] * w[i]: the scalar loss gradCheck references use (its gradient is w). */
export function dotRef(a: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * w[i]!;
  return s;
}

/** log_softmax over the last axis of a [rows, cols] row-major array, in float64. */
export function logSoftmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    const lse = m + Math.log(s);
    for (let c = 0; c < cols; c++) out[r * cols + c] = x[r * cols + c]! - lse;
  }
  return out;
}

/** Bytes of pooled buffers currently held by tensors. */
export function poolInUse(): number {
  return runtime().pool.getStats().inUse;
}

/** Asserts two shapes are equal, with a readable message. */
export function assertShape(actual: Shape, expected: Shape, what = ''): void {
  assert.equal([...actual], [...expected], `${what}: shape [${actual.join(', ')}], expected [${expected.join(', ')}]`);
}

/**
 * Grid policies the grid-stride tests run each kernel under (setGridPolicy): one element per
 * invocation (the grid folded to 2-D past 65535 workgroups), 1 and 3 workgroups (every invocation
 * loops many times; 3 makes the stride not a power of two), 5 elements per invocation, and the
 * adapter's default (null).
 */
export const GRID_POLICIES: readonly (GridPolicy | null)[] = [
  { maxGroups: 0, perInvocation: 1 },
  { maxGroups: 1, perInvocation: 1 },
  { maxGroups: 3, perInvocation: 1 },
  { maxGroups: 0, perInvocation: 5 },
  null,
];

/** Runs fn (recording launches) under a grid policy, then restores the default. */
export async function withGrid<T>(policy: GridPolicy | null, fn: () => T | Promise<T>): Promise<T> {
  setGridPolicy(policy);
  try {
    return await fn();
  } finally {
    setGridPolicy(null);
  }
}

/**
 * Element counts for grid-stride loops: 1, odd sizes around one workgroup, and past the default
 * policy's one-element-per-invocation range, where every invocation loops three or four times:
 * cap * 256 * 3 + 7 under a cap (a GPU), 256 * K * 3 + 7 when each invocation takes K (a CPU).
 */
export function gridStrideSizes(): number[] {
  const { maxGroups, perInvocation } = gridPolicy();
  const far = maxGroups > 0 ? maxGroups * 256 * 3 + 7 : 256 * perInvocation * 3 + 7;
  return [1, 3, 255, 257, 1031, far];
}

/**
 * Runs `make` under every policy in GRID_POLICIES and asserts that the outputs are bit-identical
 * (each element is computed by one invocation in the same way, whatever the grid). Returns the
 * output of the default policy, for the caller's float64 check (which also catches NaN poison:
 * an element no invocation wrote).
 */
export async function sameUnderEveryGrid(what: string, make: () => Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
  let first: Float32Array | Int32Array | Uint32Array | null = null;
  let result: Float32Array | Int32Array | Uint32Array | null = null;
  for (const policy of GRID_POLICIES) {
    const out = await withGrid(policy, () => tidy(() => make()));
    const values = await out.toArray();
    out.dispose();
    if (policy === null) result = values;
    if (first === null) {
      first = values;
      continue;
    }
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const firstBits = new Uint32Array(first.buffer, first.byteOffset, first.length);
    assert.is(bits.length, firstBits.length, `${what}: length under grid ${JSON.stringify(policy)}`);
    for (let i = 0; i < bits.length; i++) {
      if (bits[i] !== firstBits[i]) {
        assert.unreachable(`${what}: element ${i} of ${bits.length} is ${values[i]} under grid ${JSON.stringify(policy) ?? 'default'}, ${first[i]} with one element per invocation (seed ${TEST_SEED})`);
      }
    }
  }
  return result!;
}

/**
 * The gradient of sum(f(x) * w) with respect to a fresh leaf copy of x (so a backward kernel can
 * run under sameUnderEveryGrid); the caller disposes it. Its float64 reference is the backward
 * formula applied to w.
 */
export function gradientOf(x: Tensor, w: Tensor, f: (x: Tensor) => Tensor): Tensor {
  return tidy(() => {
    const leaf = clone(x);
    leaf.requiresGrad = true;
    backward(sum(mul(f(leaf), w)));
    const g = leaf.grad!;
    leaf.grad = null;
    return g;
  });
}
