// Evaluation along a path between two networks (Tatro et al. 2020, section "Evaluation"; DMC
// eval_curve.py): at each t the network's weights are set to the path's point, its batch-norm
// statistics are re-estimated on the training data at that point, and it is evaluated on the
// test set. The straight line theta(t) = (1 - t) theta_A + t theta_B is the path here; curves
// pass their own `load`.
//
// Batch-norm re-estimation (DMC utils.update_bn, used unchanged by NeuronAlignment): the running
// statistics of a point of the path are not the interpolation of the endpoints' (those describe
// other networks' activations; without the reset even t = 0 can miss the endpoint, DMC issue #8).
// They are reset (mean 0, variance 1) and every BN layer gets momentum b / (n_seen + b) for the
// batch of b images after n_seen: running <- (1 - m) running + m stat is then the b-weighted
// average of the batch statistics seen so far (m = 1 on the first batch), i.e. after one pass of
// the train loader in training mode the cumulative mean of the batch means and of the batch
// (unbiased) variances. Then the network is evaluated in eval mode.
import { add, full, mulScalar, noGrad, runtime, tidy } from '../engine/index.js';
import { BatchNorm } from '../nn/layers/batchnorm.js';
import { copyInto, type Module, type StateDict } from '../nn/module.js';
import { evaluate, type BatchSource, type EvalResult } from '../nn/evaluate.js';

/** `points` equally spaced values from 0 to 1 (the paper evaluates 65). */
export function linspace(points: number): number[] {
  if (!(Number.isInteger(points) && points >= 2)) throw new Error(`linspace: need an integer >= 2 points, got ${points}`);
  return Array.from({ length: points }, (_, i) => (i === points - 1 ? 1 : i / (points - 1)));
}

/**
 * Writes (1 - t) a + t b into every f32 tensor of `model` (parameters, and the BN running
 * statistics, which recomputeBatchNorm then replaces), and a's value into every other tensor
 * (num_batches_tracked). The form (1 - t) a + t b is exact at both ends: t = 0 gives a and t = 1
 * gives b bit for bit. `a` and `b` must hold the model's names and shapes.
 */
export function interpolateInto(model: Module, a: StateDict, b: StateDict, t: number): void {
  noGrad(() => {
    for (const [name, dst] of model.stateDict()) {
      const [ta, tb] = [a.get(name), b.get(name)];
      if (!ta || !tb) throw new Error(`interpolate: the endpoints lack '${name}'`);
      for (const src of [ta, tb]) {
        if (src.dtype !== dst.dtype || src.size !== dst.size) throw new Error(`interpolate: '${name}' is ${src.dtype}[${src.shape.join(', ')}], the model's ${dst.dtype}[${dst.shape.join(', ')}]`);
      }
      tidy(() => copyInto(dst, dst.dtype === 'f32' ? add(mulScalar(ta, 1 - t), mulScalar(tb, t)) : ta));
    }
  });
}

/** The model's batch-norm layers, in module order. */
export function batchNormLayers(model: Module): BatchNorm[] {
  return model.namedModules().flatMap(([, m]) => (m instanceof BatchNorm ? [m] : []));
}

/**
 * BatchNorm.momentum is fixed for training (readonly in its API); update_bn sets it per batch,
 * and this is the one place that does.
 */
function setMomentum(bn: BatchNorm, momentum: number): void {
  (bn as { momentum: number }).momentum = momentum;
}

/** Running mean 0, variance 1, num_batches_tracked 0 (torch's reset_running_stats). */
export function resetRunningStats(bn: BatchNorm): void {
  const state = bn.stateDict();
  noGrad(() =>
    tidy(() => {
      for (const [name, value] of [['running_mean', 0], ['running_var', 1], ['num_batches_tracked', 0]] as const) {
        const t = state.get(name)!;
        copyInto(t, full(t.shape, value, t.dtype));
      }
    }),
  );
}

export interface RecomputeOptions {
  /** Use only the first N batches of the loader (default: the whole pass). */
  batches?: number;
  /** Loader epoch whose order (and augmentation draws) the pass uses (default 0). */
  epoch?: number;
}

export interface RecomputeResult {
  /** Images and batches the statistics average over (0 when the model has no batch norm). */
  images: number;
  batches: number;
}

/** Batches recorded between waits for the GPU: bounds the queued work, surfaces errors early. */
const SYNC_EVERY = 16;

/**
 * Re-estimates every BN layer's running statistics on `loader` (DMC update_bn): reset, then one
 * forward pass with the BN layers in training mode and momentum b / (n_seen + b) per batch. The
 * other modules stay in eval mode: DMC's model.train() also switches dropout on, which changes
 * nothing here as no BN layer follows a dropout in these architectures, and leaving it off keeps
 * the dropout generators untouched (GoogLeNet's auxiliary heads run only in training mode, so
 * their BN layers keep reset statistics; eval never uses them). A batch of one image is skipped
 * (a [1, C] batch has no variance; PyTorch's BatchNorm1d refuses it). Restores modes and momenta
 * afterwards.
 */
export async function recomputeBatchNorm(model: Module, loader: BatchSource, opts: RecomputeOptions = {}): Promise<RecomputeResult> {
  const bns = batchNormLayers(model);
  if (bns.length === 0) return { images: 0, batches: 0 };
  const count = Math.min(loader.length, opts.batches ?? Infinity);
  if (!(count >= 1)) throw new Error(`recomputeBatchNorm: no batches (the loader has ${loader.length}, asked for ${opts.batches})`);
  const modes = model.namedModules().map(([, m]) => [m, m.training] as const);
  const momenta = bns.map((bn) => bn.momentum);
  let images = 0;
  let batches = 0;
  try {
    model.eval();
    for (const bn of bns) {
      bn.training = true;
      resetRunningStats(bn);
    }
    for (let i = 0; i < count; i++) {
      tidy(() =>
        noGrad(() => {
          const { x, y } = loader.batch(opts.epoch ?? 0, i);
          const b = y.size;
          if (b < 2) return;
          for (const bn of bns) setMomentum(bn, b / (images + b));
          model.forward(x);
          images += b;
          batches++;
        }),
      );
      if ((i + 1) % SYNC_EVERY === 0) await runtime().stream.finish();
    }
    await runtime().stream.finish();
  } finally {
    bns.forEach((bn, i) => setMomentum(bn, momenta[i]!));
    for (const [m, mode] of modes) m.training = mode;
  }
  if (images === 0) throw new Error('recomputeBatchNorm: no batch of 2 or more images');
  return { images, batches };
}

export interface PathPoint extends EvalResult {
  t: number;
  /** Images the BN statistics were re-estimated on at this t (0: no BN, or no reset). */
  bnImages: number;
  /** Loss and accuracy on the training images (PathEvaluationOptions.train), when asked for. */
  train?: EvalResult;
  seconds: number;
}

export interface PathEvaluationOptions {
  /** Training batches for BN re-estimation; null evaluates with the loaded running statistics. */
  bn: BatchSource | null;
  test: BatchSource;
  /** Re-estimate BN on only the first N batches of `bn`. */
  bnBatches?: number;
  /** Also evaluate on these (training) batches at each t, after the same re-estimation. */
  train?: BatchSource;
  onPoint?: (p: PathPoint) => void;
}

/**
 * Test loss and accuracy at each t: `load(t)` sets the model's weights to the path's point, BN is
 * re-estimated (unless `bn` is null), then `evaluate`.
 */
export async function evaluatePath(model: Module, ts: readonly number[], load: (t: number) => void | Promise<void>, opts: PathEvaluationOptions): Promise<PathPoint[]> {
  const out: PathPoint[] = [];
  for (const t of ts) {
    const start = performance.now();
    await load(t);
    const bn = opts.bn ? await recomputeBatchNorm(model, opts.bn, { batches: opts.bnBatches }) : { images: 0 };
    const result = await evaluate(model, opts.test);
    const train = opts.train ? { train: await evaluate(model, opts.train) } : {};
    const point = { t, ...result, bnImages: bn.images, ...train, seconds: (performance.now() - start) / 1000 };
    out.push(point);
    opts.onPoint?.(point);
  }
  return out;
}

/** evaluatePath on the straight line (1 - t) a + t b. */
export function evaluateLine(model: Module, a: StateDict, b: StateDict, ts: readonly number[], opts: PathEvaluationOptions): Promise<PathPoint[]> {
  return evaluatePath(model, ts, (t) => interpolateInto(model, a, b, t), opts);
}
