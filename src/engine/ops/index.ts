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
