// Shared test utilities: engine start-up with NaN-poisoned allocations, seeded float64 inputs,
// closeness assertions, and finite-difference gradient checks against float64 references.
import * as assert from 'uvu/assert';
import { Tensor, backward, init, poisonNewTensors, tensor, tidy, type Shape } from '../src/engine/index.js';

/** Opens the device once per process and poisons every new tensor's buffer with NaN. */
export async function setupEngine(): Promise<void> {
  await init();
  poisonNewTensors(true);
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

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise, and that no value is NaN
 * (a NaN means part of the output was never written: tensors start poisoned).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol = 0, what = ''): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) assert.unreachable(`${what}: element ${i} is ${a}, expected ${e} (seed ${TEST_SEED})`);
    if (Number.isNaN(e)) continue;
    if (a === e) continue; // also covers equal infinities
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  if (worstAt >= 0) {
    assert.unreachable(
      `${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (rtol ${rtol}, atol ${atol}, seed ${TEST_SEED})`,
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
