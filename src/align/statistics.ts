// Streamed activation statistics of two networks and their cross-correlation (NeuronAlignment
// utils/crosscorrelation.py), accumulated batch by batch on the GPU without ever holding all
// activations.
//
// Samples: every spatial position of every image is one sample of a unit (channel), so an
// activation [N, C, H, W] becomes an [N*H*W, C] matrix (no spatial averaging); [N, C] is used as
// it is. Maps wider than 32 are first subsampled [:, :, ::2, ::2] (the official rule for Tiny
// ImageNet's 64x64 maps).
//
// Correlation of unit i of network A with unit j of network B over n samples, with population
// statistics and the official eps (which keeps dead units, sigma = 0, at correlation 0):
//   C[i][j] = E[(a_i - mu_i)(b_j - nu_j)] / ((sigma_i + 1e-5)(sigma_j + 1e-5)).
//
// Numerics: raw sums of squares lose everything to cancellation when the mean is large against
// the spread (E[a^2] - mu^2 with mu = 1000 in float32). Each batch is centred on its own mean
// instead, and batches are merged with Chan et al.'s pairwise update: for counts n and m, means
// mu and mu', centred second moments M and M' (sums of products of deviations),
//   mu'' = mu + (mu' - mu) m / (n + m)
//   M''  = M + M' + (mu' - mu)(nu' - nu)^T n m / (n + m)
// which holds for the cross-product matrix and, with a = b, for each unit's sum of squares.
import { Tensor, add, div, indexSelect, keep, matmul, mean, mul, mulScalar, permute, reshape, sqrt, square, sub, sum, addScalar, tensor, tidy } from '../engine/index.js';

/** Correlation's eps on each standard deviation (NeuronAlignment crosscorrelation.py). */
export const CORRELATION_EPS = 1e-5;

/** Maps wider than this are subsampled by 2 in both spatial axes before the statistics. */
export const SUBSAMPLE_ABOVE_WIDTH = 32;

/** x[:, :, ::2, ::2] for an [N, C, H, W] tensor. */
export function subsample2(x: Tensor): Tensor {
  const every2 = (n: number) => tensor(Int32Array.from({ length: Math.ceil(n / 2) }, (_, i) => 2 * i), undefined, 'i32');
  return indexSelect(indexSelect(x, 2, every2(x.shape[2]!)), 3, every2(x.shape[3]!));
}

/**
 * An activation as a [samples, units] matrix: [N, C] as it is; [N, C, H, W] (after the
 * subsampling rule) permuted to [N, H, W, C] and flattened, each spatial position a sample.
 */
export function samplesByUnits(x: Tensor): Tensor {
  if (x.rank === 2) return x;
  if (x.rank !== 4) throw new Error(`activation statistics: expected [N, C] or [N, C, H, W], got [${x.shape.join(', ')}]`);
  const y = x.shape[3]! > SUBSAMPLE_ABOVE_WIDTH ? subsample2(x) : x;
  return reshape(permute(y, [0, 2, 3, 1]), [-1, x.shape[1]!]);
}

/**
 * Running count, means, centred sums of squares and centred cross-product matrix of the units
 * of two activations seen together (A's units as rows, B's as columns). The state tensors are
 * kept; dispose() frees them.
 */
export class CrossStatistics {
  count = 0;
  private meanA: Tensor | null = null;
  private meanB: Tensor | null = null;
  private m2A: Tensor | null = null;
  private m2B: Tensor | null = null;
  private cross: Tensor | null = null;

  constructor(
    readonly unitsA: number,
    readonly unitsB: number,
  ) {}

  /** Adds one batch: activations of A and B on the same inputs ([N, C] or [N, C, H, W]). */
  update(actA: Tensor, actB: Tensor): void {
    tidy(() => {
      const a = samplesByUnits(actA);
      const b = samplesByUnits(actB);
      if (a.shape[1] !== this.unitsA || b.shape[1] !== this.unitsB || a.shape[0] !== b.shape[0]) {
        throw new Error(`activation statistics: got [${a.shape.join(', ')}] and [${b.shape.join(', ')}] for ${this.unitsA} x ${this.unitsB} units`);
      }
      const m = a.shape[0]!;
      if (m === 0) return;
      const batchMeanA = mean(a, 0);
      const batchMeanB = mean(b, 0);
      const ca = sub(a, batchMeanA);
      const cb = sub(b, batchMeanB);
      const batch = {
        meanA: batchMeanA,
        meanB: batchMeanB,
        m2A: sum(square(ca), 0),
        m2B: sum(square(cb), 0),
        cross: matmul(ca, cb, { transA: true }),
      };
      const n = this.count;
      let next = batch;
      if (n > 0) {
        const dA = sub(batch.meanA, this.meanA!);
        const dB = sub(batch.meanB, this.meanB!);
        const w = (n * m) / (n + m);
        next = {
          meanA: add(this.meanA!, mulScalar(dA, m / (n + m))),
          meanB: add(this.meanB!, mulScalar(dB, m / (n + m))),
          m2A: add(add(this.m2A!, batch.m2A), mulScalar(square(dA), w)),
          m2B: add(add(this.m2B!, batch.m2B), mulScalar(square(dB), w)),
          // The outer product dA dB^T as a broadcast [C, 1] x [1, D].
          cross: add(add(this.cross!, batch.cross), mulScalar(mul(reshape(dA, [-1, 1]), reshape(dB, [1, -1])), w)),
        };
      }
      this.disposeState();
      this.meanA = keep(next.meanA);
      this.meanB = keep(next.meanB);
      this.m2A = keep(next.m2A);
      this.m2B = keep(next.m2B);
      this.cross = keep(next.cross);
      this.count = n + m;
    });
  }

  /** Per-unit population means (A's and B's), [C] and [D]. */
  means(): [Tensor, Tensor] {
    this.checkCount();
    return [this.meanA!, this.meanB!];
  }

  /** Per-unit population standard deviations sqrt(M2 / n), as new tensors. */
  stds(): [Tensor, Tensor] {
    this.checkCount();
    return [sqrt(mulScalar(this.m2A!, 1 / this.count)), sqrt(mulScalar(this.m2B!, 1 / this.count))];
  }

  /** The [C, D] cross-correlation matrix (a new tensor; see the file comment for the formula). */
  correlation(): Tensor {
    this.checkCount();
    return tidy(() => {
      const [sa, sb] = this.stds();
      const cov = mulScalar(this.cross!, 1 / this.count);
      const scale = mul(reshape(addScalar(sa, CORRELATION_EPS), [-1, 1]), reshape(addScalar(sb, CORRELATION_EPS), [1, -1]));
      return div(cov, scale);
    });
  }

  dispose(): void {
    this.disposeState();
    this.count = 0;
  }

  private checkCount(): void {
    if (this.count === 0) throw new Error('activation statistics: no samples yet');
  }

  private disposeState(): void {
    for (const t of [this.meanA, this.meanB, this.m2A, this.m2B, this.cross]) t?.dispose();
    this.meanA = this.meanB = this.m2A = this.m2B = this.cross = null;
  }
}
