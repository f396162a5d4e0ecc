// The buffer pool: GPU storage buffers recycled by size class.
//
// A released buffer may still be read by dispatches that are recorded but not yet submitted, and
// it is reusable at once: a later dispatch that writes it is recorded after those reads and runs
// after them (one queue, commands in order), and a queue.writeBuffer upload, which would land
// before unsubmitted commands, is preceded by a submit of everything recorded (CommandStream
// .upload). Reuse within a batch of recorded work is what keeps a training step's pool near the
// bytes it actually holds at once: holding released buffers back until the next submit (as tfjs
// does) kept ResNet32's step at twice its peak in use.
//
// Size classes: below 64 KiB sizes round up to a multiple of 256 bytes; above, to four steps per
// power of two (1, 1.25, 1.5, 1.75 x 2^k), so at most 25% of a buffer is slack and a training loop
// with fixed shapes reuses exactly the buffers it freed. A class is capped at the largest buffer a
// kernel can bind, so a size that fits is never rounded past the limit.
//
// When no free buffer of the class exists, the smallest free one of at most twice the class is
// taken before a new one is made (best fit; above 64 KiB only, where memory is). A network with many shapes (GoogLeNet: ~60 classes
// over 1 MiB) needs different classes at different moments of a step, the activations forward
// and the gradients and kernel temporaries backward; reusing only exact classes left its pool at
// 1.9x the bytes it held at once, best fit within 2x at 1.2x (measured on a recorded trace of
// the step's requests). A buffer used for a smaller request counts whole in `inUse`.
//
// Device limits: every tensor buffer is bound whole as a storage buffer, so no tensor may exceed
// min(maxBufferSize, maxStorageBufferBindingSize) (128 MiB on lavapipe, 2-4 GiB on most GPUs).
// acquire() refuses a larger request with a DeviceLimitError before calling createBuffer: Dawn
// would otherwise print a multi-line validation dump and fail later, at a bind group.

const SMALL = 64 * 1024;

export function sizeClass(bytes: number): number {
  const b = Math.max(bytes, 4);
  if (b <= SMALL) return Math.ceil(b / 256) * 256;
  const k = Math.floor(Math.log2(b));
  const step = 2 ** (k - 2);
  return Math.ceil(b / step) * step;
}

/** A tensor larger than the adapter can bind; the message names the size and the limit. */
export class DeviceLimitError extends Error {
  override name = 'DeviceLimitError';
}

/** Bytes as a person reads them: 1.8 TiB, 128 MiB, 512 B. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

export interface PoolStats {
  /** Bytes of buffers currently handed out to tensors. */
  inUse: number;
  /** The largest `inUse` seen since creation or the last resetPeak(). */
  peakInUse: number;
  /** Bytes of all GPU buffers the pool owns (handed out or free). */
  allocated: number;
  /** The largest `allocated` seen: the pool's high-water mark. */
  peakAllocated: number;
  /** Number of createBuffer calls so far. */
  creations: number;
}

/** The first index of sorted `xs` whose value is at least `x`. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How much larger than a request's class a reused free buffer may be (see the file comment). */
const BEST_FIT_RATIO = 2;

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  /** The sizes with free buffers, ascending (the keys of `free` whose lists are not empty). */
  private freeSizes: number[] = [];
  private stats: PoolStats = { inUse: 0, peakInUse: 0, allocated: 0, peakAllocated: 0, creations: 0 };

  /** The largest buffer a kernel can bind whole (see the file comment). */
  readonly maxBytes: number;
  /** Which limit maxBytes is, for the error message. */
  private readonly limitName: string;

  constructor(private readonly device: GPUDevice) {
    const { maxBufferSize, maxStorageBufferBindingSize } = device.limits;
    this.maxBytes = Math.min(maxBufferSize, maxStorageBufferBindingSize);
    this.limitName = maxStorageBufferBindingSize <= maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
  }

  /**
   * A storage buffer of at least `bytes` bytes (its size is the size class). `what` names the
   * request in the DeviceLimitError thrown when it is larger than maxBytes (a function: the hot
   * path builds no string).
   */
  acquire(bytes: number, what: () => string = () => 'a buffer'): GPUBuffer {
    if (bytes > this.maxBytes) {
      throw new DeviceLimitError(
        `${what()} needs ${formatBytes(bytes)} (${bytes} bytes), more than this adapter's ${this.limitName} of ${formatBytes(this.maxBytes)} (${this.maxBytes} bytes)`,
      );
    }
    const size = Math.min(sizeClass(bytes), this.maxBytes - (this.maxBytes % 4));
    let buffer = this.takeFree(size);
    if (!buffer) {
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.stats.creations++;
      this.stats.allocated += size;
      this.stats.peakAllocated = Math.max(this.stats.peakAllocated, this.stats.allocated);
    }
    this.stats.inUse += buffer.size;
    this.stats.peakInUse = Math.max(this.stats.peakInUse, this.stats.inUse);
    return buffer;
  }

  /** The smallest free buffer of `size` to BEST_FIT_RATIO x `size` bytes (exactly `size` for small ones), taken off the free lists; or undefined. */
  private takeFree(size: number): GPUBuffer | undefined {
    const i = lowerBound(this.freeSizes, size);
    const found = this.freeSizes[i];
    if (found === undefined || found > (size <= SMALL ? size : size * BEST_FIT_RATIO)) return undefined;
    const list = this.free.get(found)!;
    const buffer = list.pop()!;
    if (list.length === 0) {
      this.free.delete(found);
      this.freeSizes.splice(i, 1);
    }
    return buffer;
  }

  /** Gives a buffer back; the next acquire that fits may take it (see the file comment). */
  release(buffer: GPUBuffer): void {
    this.stats.inUse -= buffer.size;
    let list = this.free.get(buffer.size);
    if (!list) {
      this.free.set(buffer.size, (list = []));
      this.freeSizes.splice(lowerBound(this.freeSizes, buffer.size), 0, buffer.size);
    }
    list.push(buffer);
  }

  /** Destroys every free buffer (e.g. between benchmarks of different sizes). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const buffer of list) {
        this.stats.allocated -= buffer.size;
        buffer.destroy();
      }
    }
    this.free.clear();
    this.freeSizes = [];
  }

  getStats(): PoolStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakInUse = this.stats.inUse;
    this.stats.peakAllocated = this.stats.allocated;
  }
}
