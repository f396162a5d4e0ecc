// neuralign as a library: the engine (tensors, ops, autodiff on WebGPU) at the top level, the nn
// layer (modules, models, optimizer, data, checkpoints, training) as `nn`, as in PyTorch, and the
// paper's code (permutation specs, alignment, weight matching, REPAIR, paths and barriers) as
// `align`. This entry is Node's: it makes Dawn's Node bindings the engine's WebGPU on import (a
// page uses src/engine/index.ts directly, whose devices come from navigator.gpu).
import { useDawn } from './engine/dawn.js';

useDawn();
export { useDawn };
export * from './engine/index.js';
export * as nn from './nn/index.js';
export * as align from './align/index.js';
