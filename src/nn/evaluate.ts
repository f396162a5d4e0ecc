// Test loss and accuracy of a model on a loader. The sums stay on the GPU (cross-entropy times
// batch size, and the count of argmax hits) and are read once at the end, so evaluation costs one
// read-back however many batches it has.
import { Tensor, add, argmax, concat, crossEntropy, eq, keep, mulScalar, noGrad, reshape, sum, tidy, zeros } from '../engine/index.js';
import type { Batch } from './data/index.js';
import type { Module } from './module.js';

/** Anything that hands out numbered batches: a DataLoader, or a wrapper of one in tests. */
export interface BatchSource {
  readonly length: number;
  batch(epoch: number, index: number): Batch;
}

export interface EvalResult {
  /** Mean cross-entropy per image. */
  loss: number;
  /** Fraction of images whose argmax logit is the label. */
  accuracy: number;
  images: number;
}

/** How many rows of `logits` have their argmax at the label `y` (a scalar f32 tensor, on the GPU). */
export function correctCount(logits: Tensor, y: Tensor): Tensor {
  return sum(eq(argmax(logits, 1), y));
}

/** [sum of per-image cross-entropy, correct count] of one batch, as a [2] tensor. */
export function batchTotals(logits: Tensor, y: Tensor): Tensor {
  const b = y.size;
  const lossSum = mulScalar(crossEntropy(logits, y), b);
  const correct = correctCount(logits, y);
  return concat([reshape(lossSum, [1]), reshape(correct, [1])], 0);
}

/**
 * Evaluates `model` in eval mode (running BN statistics, no dropout) on every batch of `loader`
 * (epoch 0 of its order), without gradients; restores the model's previous mode.
 */
export async function evaluate(model: Module, loader: BatchSource): Promise<EvalResult> {
  const wasTraining = model.training;
  model.eval();
  let totals = keep(zeros([2]));
  let images = 0;
  try {
    for (let i = 0; i < loader.length; i++) {
      const next = tidy(() =>
        noGrad(() => {
          const { x, y } = loader.batch(0, i);
          images += y.size;
          return add(totals, batchTotals(model.forward(x), y));
        }),
      );
      totals.dispose();
      totals = keep(next);
    }
    const [lossSum, correct] = await totals.toArray();
    return { loss: lossSum! / images, accuracy: correct! / images, images };
  } finally {
    totals.dispose();
    model.train(wasTraining);
  }
}
