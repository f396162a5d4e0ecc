// Tensors: a shape, a dtype and a GPU buffer from the pool. Always contiguous, row-major (the last
// axis varies fastest). `reshape` shares the buffer; every other op writes a new one.
//
// Memory is released deterministically, never by the garbage collector: a tensor is freed by
// dispose(), or by the end of the `tidy` scope it was made in unless it was returned from that
// scope or passed to keep(). Buffers shared by reshapes are reference-counted.
import { runtime } from './runtime.js';
import type { GradNode } from './autograd.js';

export type DType = 'f32' | 'i32' | 'u32';
export type Shape = readonly number[];
/** The array toArray(dtype) returns for a dtype. */
export type TypedArrayOf<D extends DType> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint32Array;

/** Every dtype is 4 bytes wide. */
export const BYTES_PER_ELEMENT = 4;

/** Whether two shapes are equal, axis by axis (no broadcasting). */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(', ')}]`);
  }
}

/** A pooled buffer shared by a tensor and its reshapes. */
class Storage {
  refs = 1;
  constructor(readonly buffer: GPUBuffer) {}
}

export class Tensor {
  readonly size: number;
  private storage: Storage | null;
  /** Set on leaves (parameters, inputs) whose gradient backward() should compute. */
  requiresGrad = false;
  /** The accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  /** How this tensor was computed, when it needs a gradient (see autograd.ts). */
  node: GradNode | null = null;
  /** Set by keep(): no scope disposes it. */
  kept = false;

  constructor(
    readonly shape: Shape,
    readonly dtype: DType,
    storage?: Storage,
  ) {
    checkShape(shape);
    this.size = sizeOf(shape);
    if (storage) this.storage = storage;
    else {
      this.storage = new Storage(runtime().pool.acquire(this.size * BYTES_PER_ELEMENT, () => `a ${dtype} tensor of shape [${shape.join(', ')}]`));
      allocationHook?.(this);
    }
    track(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storage === null;
  }

  /** The GPU buffer; throws if the tensor was disposed. */
  get buffer(): GPUBuffer {
    if (!this.storage) throw new Error(`tensor [${this.shape.join(', ')}] used after dispose()`);
    return this.storage.buffer;
  }

  /** Bytes of data (the buffer itself may be larger: it has a pool size class). */
  get bytes(): number {
    return this.size * BYTES_PER_ELEMENT;
  }

  /** A tensor of a new shape over the same buffer (no copy). -1 infers one axis. */
  reshape(shape: Shape): Tensor {
    const resolved = inferShape(shape, this.size);
    const storage = this.storage;
    if (!storage) throw new Error('reshape of a disposed tensor');
    storage.refs++;
    return new Tensor(resolved, this.dtype, storage);
  }

  /** Frees the buffer (when no reshape shares it). Safe to call twice. */
  dispose(): void {
    if (!this.storage) return;
    if (--this.storage.refs === 0) runtime().pool.release(this.storage.buffer);
    this.storage = null;
    this.node = null;
    untrack(this);
  }

  /**
   * Reads the values back to the CPU (submits the recorded work and waits for it). Given the
   * dtype the caller expects, checks it and types the result (toArray('f32') is a Float32Array).
   */
  async toArray(): Promise<Float32Array | Int32Array | Uint32Array>;
  async toArray<D extends DType>(dtype: D): Promise<TypedArrayOf<D>>;
  async toArray(dtype?: DType): Promise<Float32Array | Int32Array | Uint32Array> {
    if (dtype !== undefined && dtype !== this.dtype) throw new Error(`toArray('${dtype}') of a ${this.dtype} tensor`);
    const data = await runtime().stream.read(this.buffer, this.bytes);
    return typedArray(this.dtype, data);
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs one element, tensor has shape [${this.shape.join(', ')}]`);
    return (await this.toArray())[0]!;
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}]${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

let allocationHook: ((t: Tensor) => void) | null = null;

/** Runs `hook` on every newly allocated tensor (tests poison buffers with NaN through this). */
export function setAllocationHook(hook: ((t: Tensor) => void) | null): void {
  allocationHook = hook;
}

export function typedArray(dtype: DType, data: ArrayBuffer): Float32Array | Int32Array | Uint32Array {
  switch (dtype) {
    case 'f32':
      return new Float32Array(data);
    case 'i32':
      return new Int32Array(data);
    case 'u32':
      return new Uint32Array(data);
  }
}

function inferShape(shape: Shape, size: number): number[] {
  const out = [...shape];
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    const known = out.reduce((p, d, i) => (i === unknown ? p : p * d), 1);
    out[unknown] = known === 0 ? 0 : size / known;
  }
  if (sizeOf(out) !== size || !out.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`cannot reshape ${size} elements into [${shape.join(', ')}]`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scopes

const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

function untrack(t: Tensor): void {
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i]!.delete(t)) return;
}

/** Marks a tensor to outlive every scope (parameters, optimizer state, running statistics). */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  untrack(t);
  return t;
}

/** Opens a scope; tensors made until endScope() belong to it. For code with awaits inside. */
export function startScope(): void {
  scopes.push(new Set());
}

/** Disposes the scope's tensors except `result`'s (which move to the enclosing scope). */
export function endScope(result?: unknown): void {
  const scope = scopes.pop();
  if (!scope) throw new Error('endScope() without startScope()');
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) parent?.add(t);
    else if (!t.kept) t.dispose();
  }
}

/** Runs `fn` and frees every tensor it made except those it returns or keeps (tfjs's tidy). */
export function tidy<T>(fn: () => T): T {
  startScope();
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; use startScope/endScope around awaits');
    return result;
  } finally {
    endScope(result);
  }
}

function collectTensors(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, out);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
}
