// Node only: WebGPU through Dawn's Node bindings (npm `webgpu`, a native addon), as a
// DevicePlatform (device.ts). Not exported from src/engine/index.ts, so a browser bundle of the
// engine never reaches it (test/engine/portable.test.ts); the Node entry points call useDawn().
//
// Order of preference (docs/ARCHITECTURE.md, "Device"):
//   1. NEURALIGN_BACKEND=vulkan|opengles|opengl|metal|d3d12 forces one Dawn backend.
//   2. Otherwise a core-feature-level adapter from Dawn's default backend (Vulkan on Linux, Metal,
//      D3D12): a real GPU, or Mesa's lavapipe on a CPU-only machine with Mesa >= 24.
//   3. Otherwise a compatibility-level adapter through Dawn's OpenGL ES backend over EGL
//      surfaceless: Mesa's llvmpipe on a machine whose Vulkan driver Dawn refuses (Mesa 22).
import { create, globals } from 'webgpu';
import { withoutNativeStderr } from './native-stderr.js';
import { NoAdapterError, setDevicePlatform, type DevicePlatform, type FeatureLevel } from './device.js';

const KNOWN_BACKENDS = ['vulkan', 'opengles', 'opengl', 'metal', 'd3d12', 'd3d11', 'null'];

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

function forcedBackend(): string | undefined {
  return process.env.NEURALIGN_BACKEND?.trim() || undefined;
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

/** A word to Atomics.wait on: a sleep that does not spin (nothing ever notifies it). */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export const dawnPlatform: DevicePlatform = {
  name: 'dawn',
  async *adapters() {
    // GPUBufferUsage, GPUMapMode, ... become globals, as they are in a browser.
    Object.assign(globalThis, globals);
    for (const attempt of attemptsFor(forcedBackend())) {
      if (attempt.backend === 'opengles' || attempt.backend === 'opengl') {
        // Dawn's GL backend needs an EGL display; without X or Wayland, Mesa's surfaceless platform.
        process.env.EGL_PLATFORM ??= 'surfaceless';
      }
      const flags = attempt.backend ? [`backend=${attempt.backend}`] : [];
      if (process.env.NEURALIGN_DAWN_FLAGS) flags.push(...process.env.NEURALIGN_DAWN_FLAGS.split(/\s+/).filter(Boolean));
      // Dawn rounds timestamp queries to 65.5 us unless told not to (a browser's guard against
      // timing attacks); the profiler (profiler.ts) needs nanoseconds. Left alone if the user
      // passes their own.
      if (!flags.some((f) => f.startsWith('disable-dawn-features='))) flags.push('disable-dawn-features=timestamp_quantization');
      const gpu = create(flags) as GPU;
      // Discovery happens inside this call, synchronously: Dawn's native limit warnings with it.
      const adapter = await quietly(() =>
        withoutNativeStderr(() => gpu.requestAdapter({ featureLevel: attempt.featureLevel, powerPreference: 'high-performance' } as GPURequestAdapterOptions)),
      );
      if (adapter) yield { gpu, adapter, backend: attempt.backend ?? defaultBackendName(), featureLevel: attempt.featureLevel };
    }
  },
  noAdapterMessage() {
    const forced = forcedBackend();
    const what = forced ? `Dawn's ${forced} backend found no WebGPU adapter` : 'no WebGPU adapter found';
    return (
      `${what}. Without a GPU, install Mesa's software drivers; on Debian bookworm as root: ` +
      'enable bookworm-backports and run `apt-get install -t bookworm-backports mesa-vulkan-drivers ' +
      'libegl-mesa0 libgl1-mesa-dri libgles2 libegl1` (or simply `bash scripts/setup.sh`). ' +
      'With a GPU, install its Vulkan driver and libvulkan1.'
    );
  },
  quietly,
  // Sleep 1 ms, then one turn of the event loop, in which Dawn polls (stream.ts, CommandStream.wait).
  idle: async () => {
    Atomics.wait(sleeper, 0, 0, 1);
    await new Promise((resolve) => setImmediate(resolve));
  },
};

/** Makes Dawn the engine's WebGPU for this process (idempotent). */
export function useDawn(): void {
  setDevicePlatform(dawnPlatform);
}
