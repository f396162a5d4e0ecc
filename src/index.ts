// neuralign as a library: the engine today; nn and align build on it.
export * from './engine/index.js';
