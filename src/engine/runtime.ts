// The engine's one runtime: the device, the buffer pool, the command stream and the pipeline
// cache, plus `launch`, the single way every op runs a kernel.
//
// Kernel binding convention (every file in src/shaders/ follows it):
//   @group(0) @binding(0) var<uniform> params : Params;   // shapes, strides, scalars (<= 256 B)
//   @group(0) @binding(1..) storage buffers, in the order the op passes them.
// Sizes live in `params`, never in the pipeline key, so one pipeline serves every shape; WGSL
// `override` constants specialize a kernel (which op, which tile) and are part of the key.
import { openDevice, type GPUContext } from './device.js';
import { envVar } from './env.js';
import { BufferPool } from './buffer-pool.js';
import { CommandStream, PARAM_SLOT_BYTES } from './stream.js';
import type { Shape } from './tensor.js';

export interface Runtime extends GPUContext {
  pool: BufferPool;
  stream: CommandStream;
  /**
   * Compiled shaders by WGSL source text (the whole text, libraries included): a file with several
   * entry points compiles once, and two kernels share a module only when their sources are equal,
   * whatever their names. Each holds its pipelines by entry point and override constants.
   */
  shaders: Map<string, CompiledShader>;
}

export interface CompiledShader {
  module: GPUShaderModule;
  pipelines: Map<string, GPUComputePipeline>;
}

let current: Runtime | null = null;
let opening: Promise<Runtime> | null = null;

/** Opens the device once; later calls return the same runtime. */
export function init(): Promise<Runtime> {
  if (current) return Promise.resolve(current);
  opening ??= openDevice().then((ctx) => {
    const pool = new BufferPool(ctx.device);
    const submitEvery = Number(envVar('NEURALIGN_SUBMIT_EVERY') ?? 64);
    current = { ...ctx, pool, stream: new CommandStream(ctx.device, submitEvery, ctx.idle), shaders: new Map() };
    return current;
  });
  opening.catch(() => (opening = null));
  return opening;
}

/** The open runtime; ops call this, so `await init()` must come first. */
export function runtime(): Runtime {
  if (!current) throw new Error('neuralign: the engine is not initialized; call `await init()` first');
  return current;
}

/**
 * Destroys the device. dawn.node keeps the process alive (and, on some drivers, a core busy)
 * while a device exists, so every command calls this before it returns.
 */
export async function shutdown(): Promise<void> {
  if (!current) return;
  const rt = current;
  current = null;
  opening = null;
  try {
    await rt.stream.finish();
  } finally {
    rt.device.destroy();
  }
}

/**
 * Destroys the buffer pool's free buffers (its cache of released ones), after submitting the
 * recorded work that may still read them: a buffer destroyed before the submit that uses it is
 * a validation error, after it the device keeps the memory until that work is done. For the end
 * of a phase whose tensor shapes will not come again (building a model).
 */
export function trimPool(): void {
  const rt = runtime();
  rt.stream.submit();
  rt.pool.trim();
}

/**
 * Whether the device has subgroups and every subgroup has at least `lanes` invocations, so that a
 * workgroup of `lanes` invocations is one subgroup (what matmul_subgroup and conv2d_subgroup need).
 */
export function hasSubgroupsOf(lanes: number): boolean {
  const rt = runtime();
  const minSize = (rt.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize ?? 0;
  return rt.device.features.has('subgroups') && minSize >= lanes;
}

/**
 * A WGSL kernel: its source, an entry point, and a name for errors and labels. WGSL has no include, so
 * a kernel that uses shared functions (src/shaders/lib/) passes [library, ..., own source], which
 * are joined in that order (directives such as `enable subgroups;` hoisted to the top, where
 * WGSL requires them).
 */
export class Kernel {
  readonly source: string;
  constructor(
    readonly name: string,
    source: string | readonly string[],
    readonly entryPoint = 'main',
  ) {
    this.source = typeof source === 'string' ? source : joinWgsl(source);
  }

  pipeline(constants: Record<string, number> = {}): GPUComputePipeline {
    const rt = runtime();
    const key = `${this.entryPoint}:${JSON.stringify(constants)}`;
    let shader = rt.shaders.get(this.source);
    let pipeline = shader?.pipelines.get(key);
    if (!pipeline) {
      pipeline = rt.stream.scoped(`compiling kernel ${this.name} ${JSON.stringify(constants)}`, () => {
        if (!shader) {
          shader = { module: rt.device.createShaderModule({ code: this.source, label: this.name }), pipelines: new Map() };
          rt.shaders.set(this.source, shader);
        }
        return rt.device.createComputePipeline({
          label: `${this.name}:${key}`,
          layout: 'auto',
          compute: { module: shader.module, entryPoint: this.entryPoint, constants },
        });
      });
      shader!.pipelines.set(key, pipeline);
    }
    return pipeline;
  }
}

/** WGSL directive lines (`enable subgroups;`), which must come before every declaration. */
const DIRECTIVE = /^\s*(enable|requires|diagnostic)\b[^;]*;\s*$/gm;

/** Joins a kernel's pieces in order, each piece's directives moved to the top of the whole. */
function joinWgsl(pieces: readonly string[]): string {
  const directives = pieces.flatMap((p) => p.match(DIRECTIVE) ?? []).map((d) => d.trim());
  const body = pieces.map((p) => p.replace(DIRECTIVE, ''));
  return [...directives, ...body].join('\n');
}

/** Writes a kernel's uniform Params struct field by field, in WGSL's layout rules. */
export class ParamWriter {
  private offset = 0;
  constructor(private readonly view: DataView) {}

  u32(...values: number[]): this {
    for (const v of values) this.put(() => this.view.setUint32(this.offset, v, true));
    return this;
  }
  i32(...values: number[]): this {
    for (const v of values) this.put(() => this.view.setInt32(this.offset, v, true));
    return this;
  }
  f32(...values: number[]): this {
    for (const v of values) this.put(() => this.view.setFloat32(this.offset, v, true));
    return this;
  }
  /** A WGSL `array<vec4<u32>, n>`: `values` padded with zeros to 4n entries, 16-byte aligned. */
  u32x4(values: readonly number[], n: number): this {
    this.align(16);
    for (let i = 0; i < 4 * n; i++) this.u32(values[i] ?? 0);
    return this;
  }
  /** Skips to the next multiple of `bytes` (WGSL aligns vec4 and struct members). */
  align(bytes: number): this {
    this.offset = Math.ceil(this.offset / bytes) * bytes;
    return this;
  }
  private put(write: () => void): void {
    if (this.offset + 4 > PARAM_SLOT_BYTES) throw new Error(`kernel params exceed ${PARAM_SLOT_BYTES} bytes`);
    write();
    this.offset += 4;
  }
}

export interface Launch {
  /** Name shown in errors ("matmul", "add"). */
  op: string;
  constants?: Record<string, number>;
  params?: (w: ParamWriter) => void;
  /** Storage buffers for bindings 1, 2, ...; null for a binding this entry point does not use. */
  buffers: readonly (GPUBuffer | null)[];
  workgroups: readonly [number, number, number];
  /**
   * Shapes of the tensors this launch reads or writes (inputs first; the output where it says
   * more), for the profiler's table only (profiler.ts). Pass the tensors' own shape arrays: they
   * are formatted only while profiling.
   */
  shapes?: readonly Shape[];
}

/** Records one kernel launch on the shared command stream. */
export function launch(kernel: Kernel, spec: Launch): void {
  const rt = runtime();
  const pipeline = kernel.pipeline(spec.constants);
  const slot = rt.stream.allocParams();
  spec.params?.(new ParamWriter(slot.view));
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: slot.binding }];
  spec.buffers.forEach((buffer, i) => buffer && entries.push({ binding: i + 1, resource: { buffer } }));
  const bindGroup = rt.stream.scoped(`${spec.op} (kernel ${kernel.name})`, () =>
    rt.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }),
  );
  if (rt.stream.profiler) rt.stream.profiler.launched(kernel, spec, pipeline, entries, slot.view);
  rt.stream.dispatch(spec.op, pipeline, bindGroup, spec.workgroups);
}

/**
 * Workgroup counts for `invocations` threads in workgroups of `size`, folded into a 2-D grid when
 * more than maxComputeWorkgroupsPerDimension (65535 by default) are needed. Kernels recover the
 * linear index with src/shaders/lib/grid.wgsl's workgroup_index and thread_index.
 */
export function grid1d(invocations: number, size: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(invocations / size));
  const max = runtime().device.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y, 1];
}

/**
 * How big a grid an element-wise launch gets. Element-wise kernels loop over their elements with
 * a grid stride (each invocation takes i, i + S, i + 2S, ... for S the grid's invocation count;
 * src/shaders/lib/grid.wgsl), so any grid covers any size: the grid is ceil(n / 256) workgroups of
 * 256, divided by `perInvocation` (the elements each invocation takes at least) and capped at
 * `maxGroups` (0: no cap). { maxGroups: 0, perInvocation: 1 } is one element per invocation.
 */
export interface GridPolicy {
  maxGroups: number;
  perInvocation: number;
}

/**
 * On a CPU adapter (llvmpipe, lavapipe) each workgroup has a fixed start-up cost of a few
 * microseconds (one workgroup per 256 elements ran `add` on 2M floats at 27 M elements/s where a
 * copy of the same bytes took 3 ms), and the rasterizer runs only as many threads as there are
 * cores, so it wants few, long workgroups. Measured on 2 cores (bench/README.md, "elementwise",
 * the sweep): a fixed cap is wrong at one size or another (16 workgroups were best at 64K
 * elements, 1024 at 4M: each SIMD batch of a workgroup runs its whole loop before the next, so
 * very long loops lose locality), while about 16 elements per invocation was at or near the best
 * at every size, so the CPU policy fixes that and caps nothing.
 *
 * On a GPU the grid must keep enough invocations in flight to hide memory latency, and each extra
 * workgroup costs next to nothing, so one element per invocation up to a cap. WebGPU does not
 * expose the number of multiprocessors, so the cap is sized for a large card: an H200 holds
 * 132 SMs x 2048 threads = 1056 workgroups of 256 resident, and 4096 is about four full waves
 * (CUDA's advice for grid-stride loops is 32 blocks per SM: 4224 there); a smaller GPU gets more
 * waves, never too few.
 */
export const CPU_GRID_POLICY: GridPolicy = { maxGroups: 0, perInvocation: 16 };
export const GPU_GRID_POLICY: GridPolicy = { maxGroups: 4096, perInvocation: 1 };

let gridOverride: GridPolicy | null = null;

/**
 * Overrides the element-wise grid policy for this process (benchmarks, tests); null restores the
 * default. NEURALIGN_GRID="G:K" (maxGroups G, perInvocation K; "0:1" is one element per
 * invocation, as before the loops) does the same from the environment.
 */
export function setGridPolicy(policy: GridPolicy | null): void {
  if (policy && !(Number.isInteger(policy.maxGroups) && policy.maxGroups >= 0 && Number.isInteger(policy.perInvocation) && policy.perInvocation >= 1)) {
    throw new Error(`setGridPolicy: maxGroups >= 0 and perInvocation >= 1, integers, got ${JSON.stringify(policy)}`);
  }
  gridOverride = policy;
}

/** Parses "G:K" (or "G", perInvocation 1) into a policy. */
export function parseGridPolicy(text: string): GridPolicy {
  const [g, k = '1', ...rest] = text.trim().split(':');
  const policy = { maxGroups: Number(g), perInvocation: Number(k) };
  if (rest.length || !(Number.isInteger(policy.maxGroups) && policy.maxGroups >= 0 && Number.isInteger(policy.perInvocation) && policy.perInvocation >= 1)) {
    throw new Error(`a grid policy is G:K (at most G workgroups, 0 for no cap; at least K elements per invocation), got '${text}'`);
  }
  return policy;
}

/** The element-wise grid policy in use: the override, NEURALIGN_GRID, or the adapter's default. */
export function gridPolicy(): GridPolicy {
  if (gridOverride) return gridOverride;
  const env = envVar('NEURALIGN_GRID')?.trim();
  if (env) return parseGridPolicy(env);
  return runtime().info.isCPU ? CPU_GRID_POLICY : GPU_GRID_POLICY;
}

/** "G:K" for a policy, as NEURALIGN_GRID takes it. */
export function gridPolicyName(p: GridPolicy): string {
  return `${p.maxGroups}:${p.perInvocation}`;
}

/**
 * Workgroups of `size` for a grid-stride loop over n elements under gridPolicy(); folded into 2-D
 * like grid1d when the count passes 65535 (only without a cap below that). The kernel loops with
 * thread_index and grid_stride (src/shaders/lib/grid.wgsl).
 */
export function gridStride(n: number, size: number): [number, number, number] {
  const { maxGroups, perInvocation } = gridPolicy();
  let groups = Math.max(1, Math.ceil(n / (size * perInvocation)));
  if (maxGroups > 0) groups = Math.min(groups, maxGroups);
  return grid1d(groups * size, size);
}
