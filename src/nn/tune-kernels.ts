// Kernel choice by timing for one model's layers, before training it: the matmul kernel for the
// adapter (tuneMatmul) and the convolution kernel for each pass of each conv layer shape
// (tuneConv; src/engine/ops/conv.ts). Every conv kernel gives bitwise the same results, so this
// changes how fast a run goes, never what it computes.
import { collectConvShapes, noGrad, tidy, tuneConv, tuneMatmul, zeros, type ConvPass, type ConvTuning, type Shape } from '../engine/index.js';
import type { Module } from './module.js';

export interface KernelTuning {
  /** The conv passes timed (layer shapes below the size worth timing keep the default kernel). */
  convs: ConvTuning[];
  /** Wall-clock milliseconds the timing took. */
  ms: number;
  /** Set when the conv kernels were not timed because the run is too short to repay it. */
  short?: true;
}

/**
 * A run that trains on fewer images than this keeps the default conv kernels: timing them costs
 * 3-15 s on llvmpipe (compiling the candidates included), and the faster kernels save about 1-2 ms
 * an image (TinyTen at width 0.5 on Fashion-MNIST: 165-200 against 201-225 images/s side by side),
 * so below ~50,000 images the timing does not pay for itself. Results are the same bits either way.
 */
export const TUNE_MIN_IMAGES = 50_000;

/**
 * Tunes the kernels for `model` on batches of `inputShape` ([N, C, H, W]): one forward pass in
 * eval mode on zeros (no running statistics change) collects the conv layer shapes, then each is
 * timed (only `passes`, when given: evaluation needs only the forward one). `images`: how many
 * images the run will train on; under TUNE_MIN_IMAGES the conv kernels keep their defaults. The
 * model's mode is restored.
 */
export async function tuneKernels(model: Module, inputShape: Shape, opts: { passes?: readonly ConvPass[]; images?: number } = {}): Promise<KernelTuning> {
  const t0 = performance.now();
  await tuneMatmul();
  if (opts.images !== undefined && opts.images < TUNE_MIN_IMAGES) return { convs: [], ms: performance.now() - t0, short: true };
  const wasTraining = model.training;
  model.eval();
  let shapes;
  try {
    shapes = collectConvShapes(() => tidy(() => noGrad(() => void model.forward(zeros(inputShape)))));
  } finally {
    model.train(wasTraining);
  }
  const convs = await tuneConv(shapes, { passes: opts.passes });
  return { convs, ms: performance.now() - t0 };
}

/** One line for a run's log: "conv kernels by timing (4.2 s): 21 passes of 7 layer shapes: subgroup 15, registers 6". */
export function describeTuning(t: KernelTuning): string {
  if (t.short) return `conv kernels: defaults (a run of under ${TUNE_MIN_IMAGES.toLocaleString('en-US')} training images does not repay timing them)`;
  if (t.convs.length === 0) return 'conv kernels: defaults (no layer large enough to time, or NEURALIGN_CONV set)';
  const counts = new Map<string, number>();
  for (const c of t.convs) counts.set(c.choice, (counts.get(c.choice) ?? 0) + 1);
  const layers = new Set(t.convs.map((c) => c.layer)).size;
  const kept = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  return `conv kernels by timing (${(t.ms / 1000).toFixed(1)} s): ${t.convs.length} passes of ${layers} layer shapes: ${kept}`;
}
