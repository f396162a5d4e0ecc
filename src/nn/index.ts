// The nn layer: modules and layers, the models, optimizer and schedules, data, checkpoints,
// the training loop, and the PGD attack.
export * from './module.js';
export * from './init.js';
export * from './layers/linear.js';
export * from './layers/conv.js';
export * from './layers/batchnorm.js';
export * from './layers/pool.js';
export * from './layers/dropout.js';
export * from './layers/activation.js';
export * from './models/index.js';
export * from './optim.js';
export * from './data/index.js';
export * from './checkpoint/index.js';
export * from './checkpoint/model.js';
export * from './evaluate.js';
export * from './train.js';
export * from './train-run.js';
export * from './update-bn.js';
export * from './pgd.js';
export * from './tune-kernels.js';
