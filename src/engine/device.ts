// Opening a WebGPU device, behind one small interface (DevicePlatform) so the engine runs from
// the same sources in Node and in a browser page (docs/ARCHITECTURE.md, "Device"):
//   - Node: src/engine/dawn.ts (Dawn's `webgpu` package) tries Dawn's backends in order; the Node
//     entry points (src/cli/main.ts, src/index.ts, the tests) register it with useDawn().
//   - A page: navigator.gpu, used when no platform was registered (browserPlatform below).
// This file imports nothing: no Node built-in, no native addon (test/engine/portable.test.ts).
// The device asks for the adapter's own maxima of the limits our kernels care about, since
// compatibility mode and browsers otherwise start with small defaults (128 or 256 invocations
// per workgroup).

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
  /** How the command stream waits for GPU promises (DevicePlatform.idle); undefined: await them directly. */
  idle?: () => Promise<void>;
}

/** No usable WebGPU adapter; the message says what to install or enable. */
export class NoAdapterError extends Error {
  override name = 'NoAdapterError';
}

/** One adapter a platform offers, with the backend and feature level it came from. */
export interface AdapterCandidate {
  gpu: GPU;
  adapter: GPUAdapter;
  backend: string;
  featureLevel: FeatureLevel;
}

/** Where WebGPU comes from: Dawn's Node bindings (src/engine/dawn.ts) or a browser's navigator.gpu. */
export interface DevicePlatform {
  name: string;
  /** The adapters to try, best first; the first one that yields a device is used. */
  adapters(): AsyncIterable<AdapterCandidate>;
  /** Why no adapter was found and what to do about it (NoAdapterError's message). */
  noAdapterMessage(): string;
  /** Runs a call whose driver chatter should be hidden (Dawn prints rejected backends to stderr). */
  quietly?<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * One pause while waiting for the GPU, between checks of a pending promise; undefined awaits
   * GPU promises directly. Dawn's Node bindings poll from setImmediate callbacks, a busy loop
   * that takes a core from a CPU adapter, so Dawn's platform sleeps 1 ms here (stream.ts).
   */
  idle?: () => Promise<void>;
}

let registered: DevicePlatform | null = null;

/** A page's navigator.gpu; undefined in Node (which has no navigator, or one without gpu). */
function navigatorGPU(): GPU | undefined {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
}

/** Makes `platform` the source of every device opened from now on (the Node entry points call useDawn()). */
export function setDevicePlatform(platform: DevicePlatform): void {
  registered = platform;
}

/** The registered platform, else the page's navigator.gpu, else an error saying how to register one. */
export function devicePlatform(): DevicePlatform {
  if (registered) return registered;
  if (navigatorGPU()) return browserPlatform;
  throw new NoAdapterError(
    !('navigator' in globalThis) || 'process' in globalThis
      ? "no WebGPU platform: in Node, call useDawn() from src/engine/dawn.ts before init() (the CLI and src/index.ts do)"
      : browserNoWebGPU(),
  );
}

/** The limits we raise to the adapter's maximum (the WebGPU defaults are too small for tiled kernels). */
export const WANTED_LIMITS = [
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

export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic/.test(text);
}

/** Opens a device on the platform's preferred adapter; throws NoAdapterError when none is usable. */
export async function openDevice(platform: DevicePlatform = devicePlatform()): Promise<GPUContext> {
  const quietly = platform.quietly?.bind(platform) ?? (<T>(fn: () => Promise<T>) => fn());
  for await (const { gpu, adapter, backend, featureLevel } of platform.adapters()) {
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
      backend,
      featureLevel,
      vendor: ai.vendor,
      architecture: ai.architecture,
      description: ai.description || ai.device || ai.vendor || 'unknown adapter',
      isCPU: isSoftwareAdapter(ai),
      features: [...device.features].sort(),
      limits: Object.fromEntries(WANTED_LIMITS.map((n) => [n, (device.limits as unknown as Record<string, number>)[n]])),
    };
    return { gpu, adapter, device, info, idle: platform.idle };
  }
  throw new NoAdapterError(platform.noAdapterMessage());
}

/** What a visitor whose browser lacks WebGPU can do. */
function browserNoWebGPU(): string {
  return (
    'this browser has no WebGPU (navigator.gpu is missing). Use Chrome or Edge 113 or newer, ' +
    'Firefox 141 or newer on Windows, or Safari 26; on Linux, Chrome needs ' +
    'chrome://flags/#enable-unsafe-webgpu (and Vulkan). The page must come from https or localhost.'
  );
}

/** A page's navigator.gpu: the high-performance adapter, else any adapter. */
export const browserPlatform: DevicePlatform = {
  name: 'browser',
  async *adapters() {
    const gpu = navigatorGPU();
    if (!gpu) return;
    for (const powerPreference of ['high-performance', undefined] as const) {
      const adapter = await gpu.requestAdapter(powerPreference ? { powerPreference } : undefined);
      if (adapter) {
        yield { gpu, adapter, backend: 'browser', featureLevel: 'core' };
        return;
      }
    }
  },
  noAdapterMessage: () =>
    'navigator.gpu.requestAdapter() found no adapter: WebGPU may be disabled or blocklisted for ' +
    'this GPU (chrome://gpu shows why); try another browser or enable chrome://flags/#enable-unsafe-webgpu',
};
