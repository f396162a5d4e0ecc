// Per-dispatch profiling of the command stream (`neuralign profile`; docs/ARCHITECTURE.md,
// "Profiling"). Off by default: the stream's `profiler` is null and launch() checks it once.
//
// While a Profiler is attached, every launch is recorded with its kernel (name, entry point,
// override constants), its op, the shapes the launch site passes, and the phase (forward,
// backward, optimizer: autograd's backward() and SGD.step() set it). Each dispatch then gets a
// compute pass of its own, so its time is measured alone by one of two methods:
//
//  - 'timestamp-query' (the adapter has the feature; lavapipe does): the pass's beginning and end
//    timestamps, resolved into a buffer at every submit and read back by collect(). This measures
//    the dispatch where it ran, inside the real step, with no submit in between; passes of their
//    own add a little work per dispatch, so the step runs slower while profiled.
//  - 'isolated-submits' (no timestamp queries): the step runs as usual, and collect() replays each
//    recorded dispatch in a submit of its own, waits for the queue with onSubmittedWorkDone, and
//    subtracts the median time of an empty submit. The replay runs on whatever the buffers hold
//    by then (a kernel's time does not depend on the values) and writes into them again (the
//    weights get a second update): profile throwaway state only.
import { runtime, type Kernel, type Launch } from './runtime.js';
import { MAX_DISPATCHES_PER_SUBMIT } from './stream.js';
import type { Shape } from './tensor.js';

export type Phase = 'forward' | 'backward' | 'optimizer';
export const PHASES: readonly Phase[] = ['forward', 'backward', 'optimizer'];
export type TimingMethod = 'timestamp-query' | 'isolated-submits';

let phase: Phase = 'forward';

/**
 * Sets the phase later launches are labelled with and returns the previous one, for the caller
 * to restore (backward() and SGD.step() do, in a finally). Everything else is 'forward'.
 */
export function setPhase(next: Phase): Phase {
  const previous = phase;
  phase = next;
  return previous;
}

export interface DispatchRecord {
  /** The kernel: name, `.entry point` when it differs, and `<override constants>`. */
  kernel: string;
  op: string;
  /** The shapes the launch site passed (Launch.shapes), "128x16x32x32 16x16x3x3"; '' if none. */
  shapes: string;
  phase: Phase;
  workgroups: readonly [number, number, number];
  /** The dispatch's time in nanoseconds, set by collect() (NaN until then). */
  ns: number;
}

/** A replayable dispatch (isolated-submits): its pipeline, bindings and uniform bytes. */
interface Replay {
  pipeline: GPUComputePipeline;
  entries: GPUBindGroupEntry[];
  params: Uint8Array<ArrayBuffer>;
}

/** The queries one submit's timestamps were resolved into, and the records they belong to. */
interface Readback {
  buffer: GPUBuffer;
  first: number;
  count: number;
}


export class Profiler {
  readonly records: DispatchRecord[] = [];
  private readonly querySet: GPUQuerySet | null = null;
  private readonly resolveBuffer: GPUBuffer | null = null;
  /** Index in `records` of the first dispatch of the batch not yet submitted. */
  private batchStart = 0;
  private readonly readbacks: Readback[] = [];
  private readonly replays: Replay[] = [];
  private collected = false;

  constructor(
    private readonly device: GPUDevice,
    readonly method: TimingMethod,
  ) {
    if (method === 'timestamp-query') {
      // Two queries per dispatch of one submit; the stream submits at most this many dispatches.
      this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * MAX_DISPATCHES_PER_SUBMIT });
      this.resolveBuffer = device.createBuffer({
        size: 16 * MAX_DISPATCHES_PER_SUBMIT,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
    }
  }

  /** Called by launch() before the stream records the dispatch. */
  launched(kernel: Kernel, spec: Launch, pipeline: GPUComputePipeline, entries: GPUBindGroupEntry[], params: DataView): void {
    this.records.push({
      kernel: kernelLabel(kernel, spec.constants),
      op: spec.op,
      shapes: spec.shapes ? spec.shapes.map(shapeLabel).join(' ') : '',
      phase,
      workgroups: [...spec.workgroups] as [number, number, number],
      ns: NaN,
    });
    if (this.method === 'isolated-submits') {
      const bytes = new Uint8Array(params.buffer, params.byteOffset, params.byteLength).slice();
      this.replays.push({ pipeline, entries: entries.slice(1), params: bytes });
    }
  }

  /** The timestamp writes of the pass for the dispatch just launched (none when isolating). */
  timestampWrites(): GPUComputePassTimestampWrites | undefined {
    if (!this.querySet) return undefined;
    const k = this.records.length - 1 - this.batchStart;
    if (k >= MAX_DISPATCHES_PER_SUBMIT) throw new Error(`profiler: more than ${MAX_DISPATCHES_PER_SUBMIT} dispatches in one submit`);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 };
  }

  /** Called by the stream before it finishes a submit's encoder: resolve that batch's queries. */
  resolve(encoder: GPUCommandEncoder): void {
    const count = this.records.length - this.batchStart;
    if (this.querySet && count > 0) {
      const bytes = 16 * count;
      const buffer = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      encoder.resolveQuerySet(this.querySet, 0, 2 * count, this.resolveBuffer!, 0);
      encoder.copyBufferToBuffer(this.resolveBuffer!, 0, buffer, 0, bytes);
      this.readbacks.push({ buffer, first: this.batchStart, count });
    }
    this.batchStart = this.records.length;
  }

  /** The stream dropped its recorded batch (after an error): so are its records. */
  abandon(): void {
    this.records.length = this.batchStart;
    this.replays.length = Math.min(this.replays.length, this.batchStart);
  }

  /**
   * Fills in every record's time. The stream must have finished (stopProfiling does that).
   * Returns the records; the profiler's GPU objects are destroyed.
   */
  async collect(): Promise<DispatchRecord[]> {
    if (this.collected) return this.records;
    this.collected = true;
    try {
      if (this.method === 'timestamp-query') await this.readTimestamps();
      else await this.replayIsolated();
    } finally {
      this.querySet?.destroy();
      this.resolveBuffer?.destroy();
      for (const r of this.readbacks) r.buffer.destroy();
    }
    return this.records;
  }

  private async readTimestamps(): Promise<void> {
    for (const { buffer, first, count } of this.readbacks) {
      await buffer.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(buffer.getMappedRange());
      for (let k = 0; k < count; k++) {
        // Timestamps may go backwards across a pass on some drivers; a negative time is taken as 0.
        const ns = Number(t[2 * k + 1]! - t[2 * k]!);
        this.records[first + k]!.ns = Math.max(0, ns);
      }
      buffer.unmap();
    }
  }

  private async replayIsolated(): Promise<void> {
    const { device } = this;
    const uniform = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    try {
      // What a submit and its wait cost with no work in them, subtracted from every dispatch.
      const empty: number[] = [];
      for (let i = 0; i < 5; i++) empty.push(await timeSubmit(device, null));
      const overhead = empty.sort((a, b) => a - b)[2]!;
      for (let i = 0; i < this.replays.length; i++) {
        const { pipeline, entries, params } = this.replays[i]!;
        device.queue.writeBuffer(uniform, 0, params);
        const bindGroup = device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: [{ binding: 0, resource: { buffer: uniform } }, ...entries],
        });
        const ms = await timeSubmit(device, { pipeline, bindGroup, workgroups: this.records[i]!.workgroups });
        this.records[i]!.ns = Math.max(0, (ms - overhead) * 1e6);
      }
    } finally {
      uniform.destroy();
    }
  }
}

/** Milliseconds from submitting one dispatch (or nothing) to the queue reporting it done. */
async function timeSubmit(
  device: GPUDevice,
  work: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; workgroups: readonly [number, number, number] } | null,
): Promise<number> {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  if (work) {
    pass.setPipeline(work.pipeline);
    pass.setBindGroup(0, work.bindGroup);
    pass.dispatchWorkgroups(...work.workgroups);
  }
  pass.end();
  const commands = encoder.finish();
  const t0 = performance.now();
  device.queue.submit([commands]);
  // Awaited directly (dawn.node polls in a busy loop): the stream's sleeping wait polls once a
  // millisecond, too coarse for dispatches of tens of microseconds.
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

/** "conv2d_gemm.gemm_registers<PASS=0,TM4=2>": name, entry point when it differs, constants. */
export function kernelLabel(kernel: Kernel, constants: Record<string, number> | undefined): string {
  let label = kernel.entryPoint === 'main' || kernel.entryPoint === kernel.name ? kernel.name : `${kernel.name}.${kernel.entryPoint}`;
  const keys = constants ? Object.keys(constants) : [];
  if (keys.length) label += `<${keys.map((k) => `${k}=${constants![k]}`).join(',')}>`;
  return label;
}

function shapeLabel(shape: Shape): string {
  return shape.length ? shape.join('x') : 'scalar';
}

/** One row of a profile: the dispatches with the same key, their count and time. */
export interface ProfileRow {
  /** The kernel ('family' grouping: without its constants); '' when not grouped by it. */
  kernel: string;
  op: string;
  shapes: string;
  phase: Phase | '';
  calls: number;
  totalNs: number;
}

/** What aggregate() groups by: 'family' is the kernel without its override constants. */
export type GroupKey = 'kernel' | 'family' | 'op' | 'shapes' | 'phase';

/**
 * Groups records by the fields `by` (default: kernel, op, shapes and phase), sorted by total time,
 * largest first (ties by kernel, then op, so the order is stable). Fields not grouped by are ''.
 */
export function aggregate(records: readonly DispatchRecord[], by: readonly GroupKey[] = ['kernel', 'op', 'shapes', 'phase']): ProfileRow[] {
  const rows = new Map<string, ProfileRow>();
  for (const r of records) {
    const row0: ProfileRow = {
      kernel: by.includes('kernel') ? r.kernel : by.includes('family') ? kernelFamily(r.kernel) : '',
      op: by.includes('op') ? r.op : '',
      shapes: by.includes('shapes') ? r.shapes : '',
      phase: by.includes('phase') ? r.phase : '',
      calls: 0,
      totalNs: 0,
    };
    const key = `${row0.kernel}\u0000${row0.op}\u0000${row0.shapes}\u0000${row0.phase}`;
    let row = rows.get(key);
    if (!row) rows.set(key, (row = row0));
    row.calls++;
    row.totalNs += r.ns;
  }
  return [...rows.values()].sort((a, b) => b.totalNs - a.totalNs || a.kernel.localeCompare(b.kernel) || a.op.localeCompare(b.op));
}

/** The kernel without its override constants ("conv2d_gemm.gemm_registers"). */
export function kernelFamily(kernel: string): string {
  const at = kernel.indexOf('<');
  return at < 0 ? kernel : kernel.slice(0, at);
}

/** What startProfiling() takes: the timing method (default: timestamp queries where present). */
export interface ProfileOptions {
  method?: TimingMethod;
}

/** The method profiling uses on this device unless told otherwise. */
export function defaultTimingMethod(): TimingMethod {
  return runtime().device.features.has('timestamp-query') ? 'timestamp-query' : 'isolated-submits';
}

/**
 * Attaches a profiler to the stream: every launch from now on is recorded (what was recorded
 * before is submitted first, so it is not). stopProfiling() times them and detaches it.
 */
export function startProfiling(opts: ProfileOptions = {}): Profiler {
  const rt = runtime();
  if (rt.stream.profiler) throw new Error('startProfiling: a profiler is already attached');
  const method = opts.method ?? defaultTimingMethod();
  if (method === 'timestamp-query' && !rt.device.features.has('timestamp-query')) {
    throw new Error("startProfiling: the device has no 'timestamp-query' feature; use 'isolated-submits'");
  }
  rt.stream.submit();
  const profiler = new Profiler(rt.device, method);
  rt.stream.profiler = profiler;
  return profiler;
}

/** Finishes the stream, detaches the profiler and returns its records with their times. */
export async function stopProfiling(): Promise<DispatchRecord[]> {
  const rt = runtime();
  const profiler = rt.stream.profiler;
  if (!profiler) throw new Error('stopProfiling: no profiler is attached');
  try {
    await rt.stream.finish();
  } finally {
    rt.stream.profiler = null;
  }
  return profiler.collect();
}
