// Checkpoints: safetensors files, written atomically.
export {
  CheckpointError,
  saveSafetensors,
  writeSafetensors,
  loadSafetensors,
  parseSafetensors,
  serializeSafetensors,
  toGpuTensors,
  type CpuTensor,
  type SafetensorsDType,
  type SafetensorsFile,
  type SaveOptions,
} from './safetensors.js';
export { writeFileAtomic, type AtomicWriteHooks } from './atomic.js';
