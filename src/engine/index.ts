// The engine's public surface: device and runtime, tensors and scopes, autograd, ops.
export { init, shutdown, runtime, launch, Kernel, grid1d, gridStride, gridPolicy, gridPolicyName, parseGridPolicy, setGridPolicy, ParamWriter, trimPool } from './runtime.js';
export type { Runtime, Launch, GridPolicy } from './runtime.js';
export { NoAdapterError, setDevicePlatform, devicePlatform, browserPlatform, type DeviceInfo, type DevicePlatform, type AdapterCandidate } from './device.js';
export { envVar, setEnvVars } from './env.js';
export { WebGPUError } from './stream.js';
export { DeviceLimitError } from './buffer-pool.js';
export { startProfiling, stopProfiling, defaultTimingMethod, setPhase, aggregate, kernelFamily, PHASES } from './profiler.js';
export type { DispatchRecord, Phase, ProfileRow, GroupKey, TimingMethod, ProfileOptions } from './profiler.js';
export { Tensor, tidy, keep, startScope, endScope, sameShape, sizeOf, type DType, type Shape } from './tensor.js';
export { backward, noGrad, isGradEnabled, record, type BackwardOptions } from './autograd.js';
export * from './ops/index.js';
