// Projected gradient descent (Madry et al. 2018), the attack of Tatro et al. 2020 section 4
// (NeuronAlignment utils/attack*.py): in the L-infinity ball of radius eps around an image x in
// pixel space [0, 1],
//   x^0     = x + U(-eps, eps)                                   (uniform random start)
//   x^{k+1} = clip_[0,1]( proj_{B(x, eps)}( x^k + step sign(grad_x CE(f(x^k), y)) ) )
// for k = 0 .. steps - 1; FGSM (Goodfellow et al. 2015) is the one-step case without random start
// and step = eps. Defaults are the paper's CIFAR ones: eps 8/255, step 2/255, 5 steps (its Tiny
// ImageNet ones are 4/255 and 1/255). Everything runs on the GPU: the gradient in the input comes
// from the engine's autodiff (a leaf input with requiresGrad; backward(loss) fills its .grad), the
// sign step, projection and clipping are element-wise ops, and nothing is read back.
//
// Where normalization happens. The official code keeps inputs in [0, 1] (its Adversarial
// transform has no Normalize) so that the ball is in pixel space; our loaders normalize on the GPU
// in the augmentation kernel (augment.wgsl: x = (p - mean_c) / std_c for a pixel p in [0, 1],
// padding filled with p = 0 before that). Rather than move Normalize into every model (a module
// at the input would rename the state dict or need an instance hook, and every consumer of a
// checkpoint, align, interpolate, curves and BN re-estimation, would have to switch its loader to
// [0, 1] images), the attack works on the loader's normalized tensor and carries the ball and
// the box through the normalization. The map p -> (p - mean_c) / std_c is per channel, affine and
// increasing (std_c > 0), so in normalized coordinates the pixel-space attack is exactly
//   ball radius eps / std_c, step step / std_c, box [(0 - mean_c) / std_c, (1 - mean_c) / std_c],
// and the sign of the gradient is the same in both coordinates (d/dp = (d/dx) / std_c). The model
// therefore is "Normalize, then the network" with Normalize fixed by the data set (its mean and
// std, recorded with the data set's name in every checkpoint), and the attack is the official
// pixel-space one. `InputSpace` says how the loader normalized (inputSpace(loader)); mean 0, std 1
// is the official code's unnormalized setting.
//
// The box is taken as [min(lo_c, x), max(hi_c, x)] per element: the clean image is always inside
// it, even where the loader's own float32 rounding of (0 - mean) / std differs from ours by an ulp,
// so eps = 0 returns x exactly.
//
// The attack changes nothing in the model: its parameters have requiresGrad switched off while it
// runs (so backward computes input gradients only, no weight gradients, and no parameter .grad is
// touched), and in training mode (BN on batch statistics, as the curve and Madry training attack
// the network as it trains) every buffer (BN running statistics, num_batches_tracked) is saved
// before and copied back after. Dropout layers, where a model has them, draw from their own
// generators, whose offsets move on (saved in checkpoints as always).
import { Generator, Tensor, add, backward, clone, concat, crossEntropy, gt, keep, logSoftmax, maximum, minimum, mul, neg, noGrad, pick, rand, reshape, sign, tensor, tidy, where, zeros } from '../engine/index.js';
import type { Batch } from './data/index.js';
import { deriveSeed, hash } from './data/random.js';
import { batchTotals, type BatchSource, type EvalResult } from './evaluate.js';
import { copyInto, type Module } from './module.js';
import { lossAndLogits, type Objective } from './train.js';

/** How the loader maps a pixel p in [0, 1] of channel c to the model's input: (p - mean[c]) / std[c]. */
export interface InputSpace {
  mean: readonly number[];
  std: readonly number[];
}

/** The input space of a loader: its mean and std overrides, else its data set's (loader.ts). */
export function inputSpace(loader: { dataset: { mean: readonly number[]; std: readonly number[] }; opts: { mean?: readonly number[]; std?: readonly number[] } }): InputSpace {
  return { mean: loader.opts.mean ?? loader.dataset.mean, std: loader.opts.std ?? loader.dataset.std };
}

/** Pixels as they are: [0, 1] with no normalization (the official code's adversarial inputs). */
export function pixelSpace(channels: number): InputSpace {
  return { mean: Array(channels).fill(0), std: Array(channels).fill(1) };
}

/** The attack's recipe, in pixel units ([0, 1] scale). */
export interface PgdOptions {
  /** L-infinity radius (default 8/255). */
  eps: number;
  /** Size of each sign-gradient step (default 2/255). */
  step: number;
  /** Number of steps (default 5). */
  steps: number;
  /** Start at a uniform random point of the ball (default true). */
  randomStart?: boolean;
  /** Independent random starts; per image the one with the highest loss is kept (default 1). */
  restarts?: number;
}

export const PGD_DEFAULTS: Readonly<Required<PgdOptions>> = { eps: 8 / 255, step: 2 / 255, steps: 5, randomStart: true, restarts: 1 };

export interface AttackOptions extends Partial<PgdOptions> {
  /** Draws of the random start (default: seed 0, so an attack is a pure function of its inputs). */
  generator?: Generator;
  /**
   * The network to attack (default model.forward). A curve passes its network at t with the
   * weights computed without gradient, so the attack reaches no bend either.
   */
  forward?: (x: Tensor) => Tensor;
}

/** Checks a recipe; returns it complete. */
export function pgdRecipe(o: Partial<PgdOptions> = {}): Required<PgdOptions> {
  const r = { ...PGD_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Required<PgdOptions>;
  if (!(r.eps >= 0 && r.eps <= 1)) throw new Error(`PGD: eps ${r.eps} is outside [0, 1] (pixel units)`);
  if (!(r.step >= 0 && r.step <= 1)) throw new Error(`PGD: step ${r.step} is outside [0, 1] (pixel units)`);
  if (!(Number.isInteger(r.steps) && r.steps >= 0)) throw new Error(`PGD: steps ${r.steps} is not an integer >= 0`);
  if (!(Number.isInteger(r.restarts) && r.restarts >= 1)) throw new Error(`PGD: restarts ${r.restarts} is not an integer >= 1`);
  return r;
}

/** FGSM's recipe: one step of size eps from x itself. */
export function fgsmRecipe(eps: number): Required<PgdOptions> {
  return pgdRecipe({ eps, step: eps, steps: 1, randomStart: false });
}

/** Per-channel constants [1, C, 1, 1] in normalized coordinates (see the file comment). */
function channelConstants(x: Tensor, space: InputSpace, r: Required<PgdOptions>) {
  if (x.rank !== 4) throw new Error(`PGD: expects images [B, C, H, W], got [${x.shape.join(', ')}]`);
  const c = x.shape[1]!;
  if (space.mean.length !== c || space.std.length !== c) throw new Error(`PGD: the input space has ${space.mean.length} means and ${space.std.length} stds for ${c} channels`);
  if (!space.std.every((s) => s > 0)) throw new Error(`PGD: every std must be > 0, got ${space.std.join(', ')}`);
  const per = (f: (mean: number, std: number) => number) => tensor(Float32Array.from(space.mean, (m, i) => f(m, space.std[i]!)), [1, c, 1, 1]);
  return {
    eps: per((_, s) => r.eps / s),
    step: per((_, s) => r.step / s),
    lo: per((m, s) => (0 - m) / s),
    hi: per((m, s) => (1 - m) / s),
  };
}

/**
 * The box every iterate stays in: the eps-ball around x intersected with the image range,
 * [max(x - eps_c, min(lo_c, x)), min(x + eps_c, max(hi_c, x))] per element.
 */
function feasibleBox(x: Tensor, k: ReturnType<typeof channelConstants>): { lower: Tensor; upper: Tensor } {
  return {
    lower: maximum(add(x, neg(k.eps)), minimum(k.lo, x)),
    upper: minimum(add(x, k.eps), maximum(k.hi, x)),
  };
}

/**
 * Runs `fn` with the model's parameters excluded from autodiff and, in training mode, its buffers
 * (BN running statistics) restored afterwards; see the file comment.
 */
export function withModelFrozen<T>(model: Module, fn: () => T): T {
  const params = model.parameters();
  const wanted = params.map((p) => p.requiresGrad);
  const saved = model.training ? noGrad(() => model.namedBuffers().map(([, b]) => [b, keep(clone(b))] as const)) : [];
  for (const p of params) p.requiresGrad = false;
  try {
    return fn();
  } finally {
    params.forEach((p, i) => (p.requiresGrad = wanted[i]!));
    noGrad(() => {
      for (const [b, copy] of saved) copyInto(b, copy);
    });
    for (const [, copy] of saved) copy.dispose();
  }
}

/**
 * d CE(forward(x), y) / dx, the mean cross-entropy over the batch (the attack's loss; its 1/B does
 * not change a sign). The model's parameters must not require gradients (withModelFrozen).
 */
export function inputGradient(forward: (x: Tensor) => Tensor, x: Tensor, y: Tensor): Tensor {
  const leaf = noGrad(() => clone(x)); // a fresh leaf: the caller's tensor stays as it was
  leaf.requiresGrad = true;
  backward(crossEntropy(forward(leaf), y), { free: { except: [] } }); // only leaf.grad is read
  const g = leaf.grad!;
  leaf.grad = null;
  leaf.dispose();
  return g; // kept by backward; the caller disposes it
}

/** One PGD step from xa: a sign-gradient ascent step, then into [lower, upper]. */
function ascend(forward: (x: Tensor) => Tensor, xa: Tensor, y: Tensor, step: Tensor, lower: Tensor, upper: Tensor): Tensor {
  return tidy(() => {
    const g = inputGradient(forward, xa, y);
    const next = noGrad(() => minimum(maximum(add(xa, mul(sign(g), step)), lower), upper));
    g.dispose();
    return next;
  });
}

/** Per-image cross-entropy [B], without gradient. */
function perImageLoss(forward: (x: Tensor) => Tensor, x: Tensor, y: Tensor): Tensor {
  return noGrad(() => tidy(() => neg(pick(logSoftmax(forward(x)), y))));
}

/**
 * PGD adversarial examples for the batch (x, y): a new tensor of x's shape in x's (normalized)
 * coordinates, without gradient, to feed the model. `space` is how x was normalized (inputSpace).
 * The model runs in the mode it is in; it is left as it was (see the file comment).
 */
export function pgd(model: Module, x: Tensor, y: Tensor, space: InputSpace, opts: AttackOptions = {}): Tensor {
  const r = pgdRecipe(opts);
  const forward = opts.forward ?? ((v: Tensor) => model.forward(v));
  const generator = opts.generator ?? new Generator(0);
  return withModelFrozen(model, () =>
    tidy(() => {
      const k = noGrad(() => channelConstants(x, space, r));
      const { lower, upper } = noGrad(() => feasibleBox(x, k));
      let best: Tensor | null = null;
      let bestLoss: Tensor | null = null;
      for (let restart = 0; restart < r.restarts; restart++) {
        let xa = noGrad(() => (r.randomStart ? minimum(maximum(add(x, mul(rand(x.shape, -1, 1, { generator }), k.eps)), lower), upper) : clone(x)));
        for (let s = 0; s < r.steps; s++) {
          const next = ascend(forward, xa, y, k.step, lower, upper);
          xa.dispose();
          xa = next;
        }
        if (r.restarts === 1) return xa;
        const loss = perImageLoss(forward, xa, y);
        if (!best || !bestLoss) {
          best = xa;
          bestLoss = loss;
          continue;
        }
        const [b, l, prevX, prevL] = [best, bestLoss, xa, loss];
        noGrad(() => {
          const better = gt(loss, l);
          best = where(reshape(better, [y.size, 1, 1, 1]), prevX, b);
          bestLoss = where(better, prevL, l);
        });
        for (const t of [b, l, prevX, prevL]) t.dispose();
      }
      return best!;
    }),
  );
}

/**
 * FGSM: clip(x + eps sign(grad_x CE), box) in one step, written out on its own (the tests check it
 * equals pgd with one step of size eps and no random start).
 */
export function fgsm(model: Module, x: Tensor, y: Tensor, space: InputSpace, eps: number, opts: Pick<AttackOptions, 'forward'> = {}): Tensor {
  const r = fgsmRecipe(eps);
  const forward = opts.forward ?? ((v: Tensor) => model.forward(v));
  return withModelFrozen(model, () =>
    tidy(() => {
      const k = noGrad(() => channelConstants(x, space, r));
      const g = inputGradient(forward, x, y);
      const out = noGrad(() => minimum(maximum(add(x, mul(sign(g), k.eps)), minimum(k.lo, x)), maximum(k.hi, x)));
      g.dispose();
      return out;
    }),
  );
}

/** Counter stream of the attack's random starts in training (any constant distinct from the others). */
const PGD_STREAM = 0x70676400; // 'pgd'

/** The random-start generator of step `step` of epoch `epoch` (0-based) of a run seeded `seed`: a pure function. */
export function pgdGenerator(seed: number, epoch: number, step: number): Generator {
  return new Generator(hash(deriveSeed(deriveSeed(seed, PGD_STREAM), epoch), step));
}

/**
 * Madry et al.'s adversarial training objective (NeuronAlignment train_model_adversarial.py):
 * each batch is replaced by its PGD examples against the model as it trains (training mode, BN
 * on batch statistics; running statistics untouched by the attack), and the loss is the model's
 * own on those examples only. The random starts are a function of (seed, epoch, step), so a
 * resumed run attacks exactly as an uninterrupted one.
 */
export function adversarialObjective(model: Module, space: InputSpace, recipe: Partial<PgdOptions>, seed: number): Objective {
  const r = pgdRecipe(recipe);
  return ({ x, y }: Batch, epoch: number, step: number) => {
    const xAdv = pgd(model, x, y, space, { ...r, generator: pgdGenerator(seed, epoch, step) });
    return lossAndLogits(model, xAdv, y);
  };
}

/** Counter stream of the random starts in evaluation. */
const EVAL_STREAM = 0x70676465; // 'pgde'

/** The random-start generator of batch `index` of an evaluation seeded `seed`. */
export function evalGenerator(seed: number, index: number): Generator {
  return new Generator(hash(deriveSeed(seed, EVAL_STREAM), index));
}

export interface AdversarialEvalResult {
  clean: EvalResult;
  pgd: EvalResult;
}

/**
 * Clean and PGD test loss and accuracy of `model` in eval mode (running BN statistics) on every
 * batch of `loader` (epoch 0 of its order), as NeuronAlignment's test/test_adversarial pair: each
 * batch is evaluated as it is and as its PGD examples against the same model. Batch i's random
 * starts come from (seed, i). The sums stay on the GPU and are read once. Restores the mode.
 */
export async function evaluateAdversarial(
  model: Module,
  loader: BatchSource,
  space: InputSpace,
  recipe: Partial<PgdOptions> = {},
  opts: { seed?: number; forward?: (x: Tensor) => Tensor } = {},
): Promise<AdversarialEvalResult> {
  const r = pgdRecipe(recipe);
  const forward = opts.forward ?? ((v: Tensor) => model.forward(v));
  const wasTraining = model.training;
  model.eval();
  let totals = keep(zeros([4]));
  let images = 0;
  try {
    for (let i = 0; i < loader.length; i++) {
      const next = tidy(() => {
        const { x, y } = loader.batch(0, i);
        images += y.size;
        const adv = pgd(model, x, y, space, { ...r, generator: evalGenerator(opts.seed ?? 0, i), forward });
        return noGrad(() => add(totals, concat([batchTotals(forward(x), y), batchTotals(forward(adv), y)], 0)));
      });
      totals.dispose();
      totals = keep(next);
    }
    const [cleanLoss, cleanHits, advLoss, advHits] = await totals.toArray();
    return {
      clean: { loss: cleanLoss! / images, accuracy: cleanHits! / images, images },
      pgd: { loss: advLoss! / images, accuracy: advHits! / images, images },
    };
  } finally {
    totals.dispose();
    model.train(wasTraining);
  }
}

/**
 * `loader`'s batches replaced by their PGD examples against `model` in the mode it is in when a
 * batch is asked for (NeuronAlignment's eval_adversarial_curve.py re-estimates BN on train batches
 * passed through its PGD wrapper: recomputeBatchNorm asks in BN training mode, so the attack sees
 * batch statistics, and the statistics average the final PGD examples only, the attack's own
 * forward passes restored away). Batch i of epoch e attacks from (seed, e, i).
 */
export function adversarialBatches(model: Module, loader: BatchSource, space: InputSpace, recipe: Partial<PgdOptions>, seed: number, forward?: (x: Tensor) => Tensor): BatchSource {
  const r = pgdRecipe(recipe);
  return {
    length: loader.length,
    batch(epoch: number, index: number): Batch {
      const { x, y } = loader.batch(epoch, index);
      const adv = pgd(model, x, y, space, { ...r, generator: pgdGenerator(seed, epoch, index), forward });
      x.dispose();
      return { x: adv, y };
    },
  };
}

/**
 * What `train --adversarial` changes in the paper's endpoint recipe (NeuronAlignment
 * train_model_adversarial.py): PGD examples only with the default attack, 200 epochs (the
 * script's default), and Garipov's schedule (1x to 50% of the epochs, linear to 0.01x at 90%, then
 * 0.01x), which the official code actually follows: its LambdaLR is never stepped, and its
 * learning rate is set per epoch by Garipov's utils. Nesterov SGD 0.1 and weight decay 5e-4 stay.
 */
export const ADVERSARIAL_TRAINING = {
  adversarial: true,
  epochs: 200,
  schedule: 'garipov',
  pgdEps: PGD_DEFAULTS.eps,
  pgdStep: PGD_DEFAULTS.step,
  pgdSteps: PGD_DEFAULTS.steps,
} as const;
