// Batch-norm statistics re-estimated for a network as it is (PyTorch's
// torch.optim.swa_utils.update_bn; DMC utils.update_bn, used unchanged by NeuronAlignment): at a
// point of a path between two networks, the endpoints' running statistics describe other
// networks' activations (without the reset even t = 0 can miss the endpoint, DMC issue #8); after
// a short training run they lag the weights (train --recompute-bn).
//
// The statistics are reset (mean 0, variance 1) and every BN layer gets momentum b / (n_seen + b)
// for the batch of b images after n_seen: running <- (1 - m) running + m stat is then the
// b-weighted average of the batch statistics seen so far (m = 1 on the first batch), i.e. after
// one pass of the train loader in training mode the cumulative mean of the batch means and of the
// batch (unbiased) variances. Then the network is evaluated in eval mode.
import { full, noGrad, runtime, tidy } from '../engine/index.js';
import type { BatchSource } from './evaluate.js';
import { BatchNorm } from './layers/batchnorm.js';
import { copyInto, type Module } from './module.js';

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
      tidy(() => {
        // The batch is made with gradients enabled: a source may attack the model for it (PGD
        // examples, nn/pgd.ts adversarialBatches); a plain loader records nothing either way.
        const { x, y } = loader.batch(opts.epoch ?? 0, i);
        noGrad(() => {
          const b = y.size;
          if (b < 2) return;
          for (const bn of bns) setMomentum(bn, b / (images + b));
          model.forward(x);
          images += b;
          batches++;
        });
      });
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

