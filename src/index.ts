// neuralign as a library: the engine (tensors, ops, autodiff on WebGPU) at the top level, the nn
// layer (modules, models, optimizer, data, checkpoints, training) as `nn`, as in PyTorch, and the
// paper's code (permutation specs, alignment, weight matching, REPAIR, paths and barriers) as
// `align`.
export * from './engine/index.js';
export * as nn from './nn/index.js';
export * as align from './align/index.js';
