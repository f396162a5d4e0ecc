// Every op, in one namespace; also hands autograd the ops it needs (add, ones, clone).
import { setGradHelpers } from '../autograd.js';
import { ones } from './creation.js';
import { add } from './elementwise.js';
import { clone } from './shape.js';

setGradHelpers({ add, ones, clone });

export * from './creation.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './shape.js';
export * from './matmul.js';
export * from './loss.js';
export * from './conv.js';
export * from './batchnorm.js';
export * from './pool.js';
export * from './dropout.js';
export * from './combine.js';
