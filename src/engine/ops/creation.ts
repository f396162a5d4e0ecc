// Making tensors: from CPU arrays (one queue.writeBuffer), or on the GPU (fill, arange, random).
import fillWgsl from '../../shaders/fill.wgsl';
import counterRngWgsl from '../../shaders/lib/counter_rng.wgsl';
import randomWgsl from '../../shaders/random.wgsl';
import gridWgsl from '../../shaders/lib/grid.wgsl';
import { Kernel, gridStride, launch, runtime } from '../runtime.js';
import { Tensor, setAllocationHook, sizeOf, type DType, type Shape } from '../tensor.js';

const fillKernel = new Kernel('fill', [gridWgsl, fillWgsl], 'fill');
const arangeKernel = new Kernel('arange', [gridWgsl, fillWgsl], 'arange');
const addIntKernel = new Kernel('add_i32', [gridWgsl, fillWgsl], 'add_i32');
const uniformKernel = new Kernel('rand_uniform', [gridWgsl, counterRngWgsl, randomWgsl], 'rand_uniform');
const normalKernel = new Kernel('rand_normal', [gridWgsl, counterRngWgsl, randomWgsl], 'rand_normal');

type NestedArray = number | readonly NestedArray[];

function flatten(data: NestedArray, shape: number[], out: number[], depth = 0): void {
  if (typeof data === 'number') {
    if (depth !== shape.length) throw new Error('tensor(): ragged nested array');
    out.push(data);
    return;
  }
  if (depth === shape.length) {
    // A new axis is only legal before the first number: [1, [2, 3]] is ragged.
    if (out.length > 0) throw new Error('tensor(): ragged nested array');
    shape.push(data.length);
  } else if (shape[depth] !== data.length) throw new Error('tensor(): ragged nested array');
  for (const d of data) flatten(d, shape, out, depth + 1);
}

/**
 * A tensor from CPU data: a typed array or (nested) number array, with an optional shape
 * (default: the nesting, or 1-D) and dtype (default: from the typed array, else f32).
 */
export function tensor(
  data: NestedArray | Float32Array | Int32Array | Uint32Array,
  shape?: Shape,
  dtype?: DType,
): Tensor {
  let values: ArrayLike<number>;
  let inferred: number[];
  if (ArrayBuffer.isView(data)) {
    values = data;
    inferred = [data.length];
    dtype ??= data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f32';
  } else {
    const flat: number[] = [];
    inferred = [];
    flatten(data, inferred, flat);
    values = flat;
  }
  dtype ??= 'f32';
  const finalShape = shape ?? inferred;
  if (sizeOf(finalShape) !== values.length) {
    throw new Error(`tensor(): ${values.length} values do not fill shape [${finalShape.join(', ')}]`);
  }
  const t = new Tensor(finalShape, dtype);
  const typed = dtype === 'f32' ? Float32Array.from(values) : dtype === 'i32' ? Int32Array.from(values) : Uint32Array.from(values);
  if (typed.byteLength > 0) runtime().stream.upload(t.buffer, typed);
  return t;
}

/** The 32-bit pattern of `value` as `dtype`. */
function wordOf(value: number, dtype: DType): number {
  const view = new DataView(new ArrayBuffer(4));
  if (dtype === 'f32') view.setFloat32(0, value, true);
  else if (dtype === 'i32') view.setInt32(0, value, true);
  else view.setUint32(0, value, true);
  return view.getUint32(0, true);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  const t = new Tensor(shape, dtype);
  fillWord(t, wordOf(value, dtype), 'full');
  return t;
}

/** The quiet-NaN bit pattern written by poisonNewTensors. */
export const POISON_WORD = 0x7fc00000;

function fillWord(t: Tensor, word: number, op: string): void {
  if (t.size === 0) return;
  launch(fillKernel, { op, params: (w) => w.u32(t.size, word), buffers: [t.buffer], workgroups: gridStride(t.size, 256), shapes: [t.shape] });
}

/**
 * While on, every new tensor's buffer is filled with NaN before any op writes it, so a kernel
 * that fails to write part of its output is caught by the tests (pooled buffers otherwise hold
 * plausible old values).
 */
export function poisonNewTensors(on: boolean): void {
  setAllocationHook(on ? (t) => fillWord(t, POISON_WORD, 'poison') : null);
}

export const zeros = (shape: Shape, dtype: DType = 'f32'): Tensor => full(shape, 0, dtype);
export const ones = (shape: Shape, dtype: DType = 'f32'): Tensor => full(shape, 1, dtype);
export const zerosLike = (t: Tensor): Tensor => full(t.shape, 0, t.dtype);
export const onesLike = (t: Tensor): Tensor => full(t.shape, 1, t.dtype);

/** [start, start + step, ...) below `end` (exact for integers below 2^24). */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'f32'): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (!(step !== 0 && Number.isFinite(step))) throw new Error(`arange: step must be finite and nonzero, got ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = new Tensor([n], dtype);
  if (n === 0) return t;
  launch(arangeKernel, {
    op: 'arange',
    constants: { DTYPE: dtype === 'f32' ? 0 : 1 },
    params: (w) => w.u32(n, 0).f32(start, step),
    buffers: [t.buffer],
    shapes: [t.shape],
    workgroups: gridStride(n, 256),
  });
  return t;
}

// ---------------------------------------------------------------------------------------------
// Random numbers. A generator is a (seed, offset) pair: each draw of n numbers uses the counters
// offset .. offset + n - 1 and advances the offset, so a sequence of draws is reproducible from
// the seed alone and independent of the backend (see random.wgsl).

export class Generator {
  constructor(
    public seed: number,
    public offset = 0,
  ) {}

  /** Reserves n counters. */
  take(n: number): number {
    const o = this.offset;
    this.offset = (this.offset + n) >>> 0;
    return o;
  }
}

let defaultGenerator = new Generator(0);

/** Seeds the default generator (torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultGenerator = new Generator(seed >>> 0);
}

export interface RandomOptions {
  generator?: Generator;
}

/** Uniform samples in [low, high). */
export function rand(shape: Shape, low = 0, high = 1, opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  const t = new Tensor(shape, 'f32');
  if (t.size === 0) return t;
  const offset = g.take(t.size);
  launch(uniformKernel, {
    op: 'rand',
    params: (w) => w.u32(t.size, g.seed, offset).f32(low, high),
    buffers: [t.buffer],
    shapes: [t.shape],
    workgroups: gridStride(t.size, 256),
  });
  return t;
}

/** Normal samples with the given mean and standard deviation. */
export function randn(shape: Shape, mean = 0, std = 1, opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  const t = new Tensor(shape, 'f32');
  if (t.size === 0) return t;
  const offset = g.take(t.size);
  launch(normalKernel, {
    op: 'randn',
    params: (w) => w.u32(t.size, g.seed, offset).f32(mean, std),
    buffers: [t.buffer],
    shapes: [t.shape],
    workgroups: gridStride(t.size, 256),
  });
  return t;
}

/** t += value in place, for an i32 tensor (a counter on the GPU; no gradient). */
export function addInPlaceInt(t: Tensor, value: number): void {
  if (t.dtype !== 'i32') throw new Error(`addInPlaceInt: expects an i32 tensor, got ${t.dtype}`);
  if (t.size === 0) return;
  launch(addIntKernel, { op: 'addInPlaceInt', params: (w) => w.u32(t.size, value >>> 0), buffers: [t.buffer], workgroups: gridStride(t.size, 256), shapes: [t.shape] });
}
