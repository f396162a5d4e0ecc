// The buffer pool: GPU storage buffers recycled by size class.
//
// A released buffer may still be read by dispatches that are recorded but not yet submitted.
// Reusing it for a GPU-side write would be safe (commands run in order), but a queue.writeBuffer
// upload would land before those commands run. So released buffers wait in `pending` until the
// next submit, and only then become reusable (tfjs and ONNX Runtime do the same).
//
// Size classes: below 64 KiB sizes round up to a multiple of 256 bytes; above, to four steps per
// power of two (1, 1.25, 1.5, 1.75 x 2^k), so at most 25% of a buffer is slack and a training loop
// with fixed shapes reuses exactly the buffers it freed.

const SMALL = 64 * 1024;

export function sizeClass(bytes: number): number {
  const b = Math.max(bytes, 4);
  if (b <= SMALL) return Math.ceil(b / 256) * 256;
  const k = Math.floor(Math.log2(b));
  const step = 2 ** (k - 2);
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Bytes of buffers currently handed out to tensors. */
  inUse: number;
  /** The largest `inUse` seen since creation or the last resetPeak(). */
  peakInUse: number;
  /** Bytes of all GPU buffers the pool owns (handed out, pending or free). */
  allocated: number;
  /** The largest `allocated` seen: the pool's high-water mark. */
  peakAllocated: number;
  /** Number of createBuffer calls so far. */
  creations: number;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private pending: GPUBuffer[] = [];
  private stats: PoolStats = { inUse: 0, peakInUse: 0, allocated: 0, peakAllocated: 0, creations: 0 };

  constructor(private readonly device: GPUDevice) {}

  /** A storage buffer of at least `bytes` bytes (its size is the size class). */
  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.stats.creations++;
      this.stats.allocated += size;
      this.stats.peakAllocated = Math.max(this.stats.peakAllocated, this.stats.allocated);
    }
    this.stats.inUse += size;
    this.stats.peakInUse = Math.max(this.stats.peakInUse, this.stats.inUse);
    return buffer;
  }

  /** Gives a buffer back; it becomes reusable after the next submit (see onSubmit). */
  release(buffer: GPUBuffer): void {
    this.stats.inUse -= buffer.size;
    this.pending.push(buffer);
  }

  /** Called by the command stream right after queue.submit(). */
  onSubmit(): void {
    for (const buffer of this.pending) {
      let list = this.free.get(buffer.size);
      if (!list) this.free.set(buffer.size, (list = []));
      list.push(buffer);
    }
    this.pending.length = 0;
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
  }

  getStats(): PoolStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakInUse = this.stats.inUse;
    this.stats.peakAllocated = this.stats.allocated;
  }
}
