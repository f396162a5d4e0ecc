// Finding a WebGPU adapter through Dawn's Node bindings and opening a device on it.
//
// Order of preference (docs/ARCHITECTURE.md, "Device"):
//   1. NEURALIGN_BACKEND=vulkan|opengles|opengl|metal|d3d12 forces one Dawn backend.
//   2. Otherwise a core-feature-level adapter from Dawn's default backend (Vulkan on Linux, Metal,
//      D3D12): a real GPU, or Mesa's lavapipe on a CPU-only machine with Mesa >= 24.
//   3. Otherwise a compatibility-level adapter through Dawn's OpenGL ES backend over EGL
//      surfaceless: Mesa's llvmpipe on a machine whose Vulkan driver Dawn refuses (Mesa 22).
// The device asks for the adapter's own maxima of the limits our kernels care about, since
// compatibility mode otherwise starts with small defaults (128 invocations per workgroup).
import { create, globals } from 'webgpu';
import { withoutNativeStderr } from './native-stderr.js';

export type FeatureLevel = 'core' | 'compatibility';

export interface DeviceInfo {
  backend: string;
  featureLevel: FeatureLevel;
  vendor: string;
  architecture: string;
  description: string;
  /** True for a software rasterizer (llvmpipe, lavapipe, SwiftShader, WARP): no GPU present. */
  isCPU: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface GPUContext {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  info: DeviceInfo;
}

/** No usable WebGPU adapter; the message says what to install. */
export class NoAdapterError extends Error {
  override name = 'NoAdapterError';
}

/** The limits we raise to the adapter's maximum (the WebGPU defaults are too small for tiled kernels). */
const WANTED_LIMITS = [
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
] as const;

const KNOWN_BACKENDS = ['vulkan', 'opengles', 'opengl', 'metal', 'd3d12', 'd3d11', 'null'];

let globalsInstalled = false;

/** Makes GPUBufferUsage, GPUMapMode, ... global, as they are in a browser. */
function installGlobals(): void {
  if (globalsInstalled) return;
  Object.assign(globalThis, globals);
  globalsInstalled = true;
}

interface Attempt {
  backend: string | undefined;
  featureLevel: FeatureLevel;
}

function attemptsFor(forced: string | undefined): Attempt[] {
  if (forced) {
    if (!KNOWN_BACKENDS.includes(forced)) {
      throw new NoAdapterError(
        `NEURALIGN_BACKEND=${forced} is not a Dawn backend (use one of ${KNOWN_BACKENDS.join(', ')})`,
      );
    }
    const gl = forced === 'opengles' || forced === 'opengl';
    return gl
      ? [{ backend: forced, featureLevel: 'compatibility' }]
      : [
          { backend: forced, featureLevel: 'core' },
          { backend: forced, featureLevel: 'compatibility' },
        ];
  }
  return [
    { backend: undefined, featureLevel: 'core' },
    { backend: 'opengles', featureLevel: 'compatibility' },
  ];
}

function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic/.test(text);
}

/** Tries one backend and feature level; returns undefined when it yields no adapter. */
async function tryAdapter(attempt: Attempt): Promise<{ gpu: GPU; adapter: GPUAdapter } | undefined> {
  if (attempt.backend === 'opengles' || attempt.backend === 'opengl') {
    // Dawn's GL backend needs an EGL display; without X or Wayland, Mesa's surfaceless platform.
    process.env.EGL_PLATFORM ??= 'surfaceless';
  }
  const flags = attempt.backend ? [`backend=${attempt.backend}`] : [];
  if (process.env.NEURALIGN_DAWN_FLAGS) flags.push(...process.env.NEURALIGN_DAWN_FLAGS.split(/\s+/).filter(Boolean));
  // Dawn rounds timestamp queries to 65.5 us unless told not to (a browser's guard against timing
  // attacks); the profiler (profiler.ts) needs nanoseconds. Left alone if the user passes their own.
  if (!flags.some((f) => f.startsWith('disable-dawn-features='))) flags.push('disable-dawn-features=timestamp_quantization');
  const gpu = create(flags) as GPU;
  // Discovery happens inside this call, synchronously: Dawn's native limit warnings with it.
  const adapter = await quietly(() =>
    withoutNativeStderr(() => gpu.requestAdapter({ featureLevel: attempt.featureLevel, powerPreference: 'high-performance' } as GPURequestAdapterOptions)),
  );
  return adapter ? { gpu, adapter } : undefined;
}

/**
 * Dawn prints its reasons for rejecting a backend (e.g. "Vulkan driver not supported") to stderr.
 * Those lines are noise once another backend succeeds, so they are hidden unless NEURALIGN_DEBUG
 * is set; a total failure is explained by NoAdapterError instead.
 */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  if (process.env.NEURALIGN_DEBUG) return fn();
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await fn();
  } finally {
    process.stderr.write = write;
  }
}

function noAdapterMessage(forced: string | undefined): string {
  const what = forced ? `Dawn's ${forced} backend found no WebGPU adapter` : 'no WebGPU adapter found';
  return (
    `${what}. Without a GPU, install Mesa's software drivers; on Debian bookworm as root: ` +
    'enable bookworm-backports and run `apt-get install -t bookworm-backports mesa-vulkan-drivers ' +
    'libegl-mesa0 libgl1-mesa-dri libgles2 libegl1` (or simply `bash scripts/setup.sh`). ' +
    'With a GPU, install its Vulkan driver and libvulkan1.'
  );
}

/** Opens a device on the preferred adapter; throws NoAdapterError when none is usable. */
export async function openDevice(): Promise<GPUContext> {
  installGlobals();
  const forced = process.env.NEURALIGN_BACKEND?.trim() || undefined;
  for (const attempt of attemptsFor(forced)) {
    const found = await tryAdapter(attempt);
    if (!found) continue;
    const { gpu, adapter } = found;
    const requiredLimits: Record<string, number> = {};
    for (const name of WANTED_LIMITS) {
      const value = (adapter.limits as unknown as Record<string, number>)[name];
      if (typeof value === 'number') requiredLimits[name] = value;
    }
    const optional: GPUFeatureName[] = ['timestamp-query', 'subgroups', 'shader-f16'];
    const requiredFeatures = optional.filter((f) => adapter.features.has(f));
    const device = await quietly(() => adapter.requestDevice({ requiredLimits, requiredFeatures }));
    const ai = adapter.info;
    const info: DeviceInfo = {
      backend: attempt.backend ?? defaultBackendName(),
      featureLevel: attempt.featureLevel,
      vendor: ai.vendor,
      architecture: ai.architecture,
      description: ai.description || ai.device,
      isCPU: isSoftwareAdapter(ai),
      features: [...device.features].sort(),
      limits: Object.fromEntries(WANTED_LIMITS.map((n) => [n, (device.limits as unknown as Record<string, number>)[n]])),
    };
    return { gpu, adapter, device, info };
  }
  throw new NoAdapterError(noAdapterMessage(forced));
}

function defaultBackendName(): string {
  switch (process.platform) {
    case 'darwin':
      return 'metal';
    case 'win32':
      return 'd3d12';
    default:
      return 'vulkan';
  }
}
