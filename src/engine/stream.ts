// The command stream: every kernel launch is recorded into one shared command encoder and
// submitted in chunks, never once per op (docs/ARCHITECTURE.md, "The command stream").
//
//  - Dispatches go into one long compute pass; a buffer copy ends the pass (copies live outside
//    passes) and the next dispatch opens a new one.
//  - Each dispatch's uniform parameters take one 256-byte slot of a uniform "arena" chunk. The CPU
//    writes the slot at record time; at submit the used part of each chunk goes up with one
//    queue.writeBuffer, which the queue orders after the previous submit's reads of that chunk,
//    so the chunks are reused for every submit.
//  - The stream submits when a read-back needs the results or after `submitEvery` dispatches.
//  - WebGPU reports errors asynchronously. Every pipeline creation and bind-group creation runs
//    inside an error scope named after the op, and encoder.finish() inside one naming the ops of
//    that submit; the first error is thrown, with that name, at the next submit or read-back.
import type { Profiler } from './profiler.js';

/** Bytes per uniform slot: WebGPU's minUniformBufferOffsetAlignment is at most 256. */
export const PARAM_SLOT_BYTES = 256;
const SLOTS_PER_CHUNK = 256;
/** The arena's 4 chunks: the stream submits when they are used up, whatever submitEvery says. */
export const MAX_DISPATCHES_PER_SUBMIT = SLOTS_PER_CHUNK * 4;

export class WebGPUError extends Error {
  override name = 'WebGPUError';
}

interface ArenaChunk {
  gpu: GPUBuffer;
  cpu: ArrayBuffer;
}

export class CommandStream {
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private chunks: ArenaChunk[] = [];
  private slotsUsed = 0;
  private opsInBatch: string[] = [];
  private staging = new Map<number, GPUBuffer[]>();
  private errors: Promise<void>[] = [];
  /** The first error an error scope caught (it names the op), and the first uncaught one. */
  private scopeError: Error | null = null;
  private uncaughtError: Error | null = null;
  /**
   * Wait for the GPU by sleeping 1 ms between polls (default) rather than awaiting Dawn's promise
   * directly. dawn.node resolves GPU promises by re-polling from setImmediate callbacks, a busy
   * loop on the JavaScript thread; with a CPU adapter whose queue runs asynchronously (lavapipe
   * under Vulkan) that loop takes a core from the threads doing the work: on 2 cores a 2048^3
   * matmul ran 1.6x faster with the sleeping wait (bench/README.md, "Waiting for the GPU").
   * The pause between polls is the platform's (`idle`, DevicePlatform.idle in device.ts: Dawn's
   * sleeps 1 ms); without one (a browser) GPU promises are awaited directly.
   */
  sleepWhileWaiting = true;
  /** Total dispatches and submits since creation (for benchmarks and tests). */
  dispatchCount = 0;
  submitCount = 0;
  /**
   * Set while profiling (startProfiling in profiler.ts), null otherwise: then each dispatch gets
   * a compute pass of its own, with its timestamp writes, and each submit resolves its queries.
   */
  profiler: Profiler | null = null;

  constructor(
    private readonly device: GPUDevice,
    public submitEvery = 64,
    private readonly idle?: () => Promise<void>,
  ) {
    device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.uncaughtError ??= new WebGPUError(`WebGPU device lost: ${info.message}`);
    });
    // Errors outside any scope would otherwise print to the console; keep them for the next check.
    // They are usually consequences ("invalid command buffer") of an error a scope caught.
    (device as unknown as { onuncapturederror: (e: GPUUncapturedErrorEvent) => void }).onuncapturederror = (e) =>
      (this.uncaughtError ??= new WebGPUError(`WebGPU error: ${e.error.message.trim()}`));
  }

  /** Runs `fn` inside validation and out-of-memory error scopes labelled `what`. */
  scoped<T>(what: string, fn: () => T): T {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    try {
      return fn();
    } finally {
      for (let i = 0; i < 2; i++) {
        this.errors.push(
          this.device.popErrorScope().then((err) => {
            if (err) this.scopeError ??= new WebGPUError(`${what}: ${err.message.trim()}`);
          }),
        );
      }
    }
  }

  /** Throws the first WebGPU error seen so far, if any, preferring one that names its op. */
  check(): void {
    const error = this.scopeError ?? this.uncaughtError;
    if (!error) return;
    // Reported once, and the recorded batch is dropped: later work (another test, a retry)
    // starts clean instead of failing on the same error.
    this.scopeError = this.uncaughtError = null;
    this.abandon();
    throw error;
  }

  /** Drops everything recorded but not submitted. */
  private abandon(): void {
    if (this.pass) this.pass.end();
    this.pass = null;
    this.encoder = null;
    this.slotsUsed = 0;
    this.opsInBatch = [];
    this.profiler?.abandon();
  }

  /** Waits for every pending error scope to resolve, then throws the first error, if any. */
  async settle(): Promise<void> {
    const pending = this.errors;
    this.errors = [];
    await Promise.all(pending);
    this.check();
  }

  /** A fresh 256-byte uniform slot: where to write the parameters, and the binding to use. */
  allocParams(): { view: DataView; binding: GPUBufferBinding } {
    const chunkIndex = Math.floor(this.slotsUsed / SLOTS_PER_CHUNK);
    if (chunkIndex === this.chunks.length) {
      this.chunks.push({
        gpu: this.device.createBuffer({
          size: SLOTS_PER_CHUNK * PARAM_SLOT_BYTES,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        }),
        cpu: new ArrayBuffer(SLOTS_PER_CHUNK * PARAM_SLOT_BYTES),
      });
    }
    const chunk = this.chunks[chunkIndex]!;
    const offset = (this.slotsUsed % SLOTS_PER_CHUNK) * PARAM_SLOT_BYTES;
    this.slotsUsed++;
    new Uint8Array(chunk.cpu, offset, PARAM_SLOT_BYTES).fill(0);
    return {
      view: new DataView(chunk.cpu, offset, PARAM_SLOT_BYTES),
      binding: { buffer: chunk.gpu, offset, size: PARAM_SLOT_BYTES },
    };
  }

  private getEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Records one dispatch. The stream submits by itself every `submitEvery` dispatches. */
  dispatch(
    op: string,
    pipeline: GPUComputePipeline,
    bindGroup: GPUBindGroup,
    workgroups: readonly [number, number, number],
  ): void {
    if (this.profiler) {
      this.endPass();
      const timestampWrites = this.profiler.timestampWrites();
      this.pass = this.getEncoder().beginComputePass(timestampWrites ? { timestampWrites } : {});
    } else this.pass ??= this.getEncoder().beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    if (this.profiler) this.endPass();
    this.opsInBatch.push(op);
    this.dispatchCount++;
    if (this.opsInBatch.length >= this.submitEvery || this.chunkFull()) this.submit();
  }

  private chunkFull(): boolean {
    // Keep a slot in hand for read-backs that follow; a new chunk is cheap but unbounded growth is not.
    return this.slotsUsed >= MAX_DISPATCHES_PER_SUBMIT;
  }

  /** Records a buffer-to-buffer copy (ends the current compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.opsInBatch.push('copy');
  }

  /**
   * Uploads CPU data into a buffer. queue.writeBuffer takes effect before any command that is
   * recorded but not yet submitted, so those are submitted first: otherwise a recorded write to
   * the same buffer (a fill, a poisoning) would land after the upload and overwrite it.
   */
  upload(dst: GPUBuffer, data: ArrayBufferView, dstOffset = 0): void {
    if (this.encoder) this.submit();
    this.device.queue.writeBuffer(dst, dstOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submits everything recorded so far. */
  submit(): void {
    this.check();
    if (!this.encoder) return;
    this.endPass();
    for (let i = 0; i * SLOTS_PER_CHUNK < this.slotsUsed; i++) {
      const used = Math.min(this.slotsUsed - i * SLOTS_PER_CHUNK, SLOTS_PER_CHUNK) * PARAM_SLOT_BYTES;
      const chunk = this.chunks[i]!;
      this.device.queue.writeBuffer(chunk.gpu, 0, chunk.cpu, 0, used);
    }
    this.profiler?.resolve(this.encoder);
    const ops = summarize(this.opsInBatch);
    const commands = this.scoped(`submit of [${ops}]`, () => this.encoder!.finish());
    this.device.queue.submit([commands]);
    this.encoder = null;
    this.slotsUsed = 0;
    this.opsInBatch = [];
    this.submitCount++;
  }

  /** Copies `bytes` bytes of `src` back to the CPU; submits what is recorded. */
  async read(src: GPUBuffer, bytes: number, srcOffset = 0): Promise<ArrayBuffer> {
    if (bytes === 0) {
      // An empty tensor: nothing to copy (a zero-size mapAsync fails on the OpenGL ES backend).
      await this.settle();
      return new ArrayBuffer(0);
    }
    const padded = Math.ceil(bytes / 4) * 4;
    const staging = this.takeStaging(padded);
    this.copy(src, srcOffset, staging, 0, padded);
    try {
      this.submit();
      await this.wait(staging.mapAsync(GPUMapMode.READ, 0, padded));
    } catch (e) {
      await this.settle(); // throws the root cause when a scope caught one
      throw e;
    }
    const out = staging.getMappedRange(0, padded).slice(0, bytes);
    staging.unmap();
    this.giveStaging(staging);
    await this.settle();
    return out;
  }

  /** Waits until the GPU has finished everything submitted (for timing). */
  async finish(): Promise<void> {
    try {
      this.submit();
    } catch (e) {
      await this.settle();
      throw e;
    }
    await this.wait(this.device.queue.onSubmittedWorkDone());
    await this.settle();
  }

  /** Awaits a GPU promise, pausing (the platform's idle) between polls when sleepWhileWaiting is set. */
  private async wait<T>(promise: Promise<T>): Promise<T> {
    const idle = this.idle;
    if (!this.sleepWhileWaiting || !idle) return promise;
    let done = false;
    const tracked = promise.finally(() => (done = true));
    tracked.catch(() => undefined); // rejections are awaited below, not reported twice
    while (!done) await idle();
    return tracked;
  }

  private takeStaging(bytes: number): GPUBuffer {
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
    return (
      this.staging.get(size)?.pop() ??
      this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
    );
  }

  private giveStaging(buffer: GPUBuffer): void {
    let list = this.staging.get(buffer.size);
    if (!list) this.staging.set(buffer.size, (list = []));
    list.push(buffer);
  }
}

/** "matmul x3, add" rather than a list of 64 names. */
function summarize(ops: string[]): string {
  const counts = new Map<string, number>();
  for (const op of ops) counts.set(op, (counts.get(op) ?? 0) + 1);
  return [...counts].map(([op, n]) => (n > 1 ? `${op} x${n}` : op)).join(', ');
}
