// neuralign as a library: the engine (tensors, ops, autodiff on WebGPU) at the top level, and the
// nn layer (modules, models, optimizer, data, checkpoints, training) as `nn`, as in PyTorch.
export * from './engine/index.js';
export * as nn from './nn/index.js';
