// Adam (Kingma and Ba 2015; torch.optim.Adam without weight decay or amsgrad), for the logits of
// PAM's Sinkhorn relaxation: their gradients pass through exp at a small temperature and span
// orders of magnitude, which Adam's per-entry scaling absorbs. With g the gradient at step k:
//   m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
//   p <- p - lr / (1 - beta1^k) * m / (sqrt(v / (1 - beta2^k)) + eps).
// A few elementwise ops per parameter (no kernel of its own): it serves small tensors.
import { Tensor, addScalar, div, keep, linearCombination, mulScalar, noGrad, sqrt, square, tidy, zeros } from '../engine/index.js';
import { copyInto } from './module.js';
import { SGD } from './optim.js';

export interface AdamOptions {
  lr: number;
  betas?: readonly [number, number];
  eps?: number;
}

/** An SGD subclass so that trainLoop drives it; step() is Adam's. */
export class Adam extends SGD {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Steps taken (PyTorch's state['step']). */
  steps = 0;
  /** Multiplies lr at the next step() (a per-step factor on top of the epoch's schedule); default 1. */
  lrScale = 1;
  private readonly moments: { m: Tensor; v: Tensor }[];

  constructor(params: readonly Tensor[], opts: AdamOptions) {
    super(params, { lr: opts.lr });
    const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new Error(`Adam: betas must be in [0, 1), got ${beta1}, ${beta2}`);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = opts.eps ?? 1e-8;
    this.moments = params.map((p) => ({ m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) }));
  }

  override step(): void {
    this.steps++;
    const c1 = 1 - this.beta1 ** this.steps;
    const c2 = 1 - this.beta2 ** this.steps;
    noGrad(() =>
      this.params.forEach((p, i) =>
        tidy(() => {
          const g = p.grad;
          if (!g || p.size === 0) return;
          const { m, v } = this.moments[i]!;
          const gv = g.reshape(p.shape);
          const m1 = linearCombination([m, gv], [this.beta1, 1 - this.beta1]);
          const v1 = linearCombination([v, square(gv)], [this.beta2, 1 - this.beta2]);
          const update = div(m1, addScalar(sqrt(mulScalar(v1, 1 / c2)), this.eps));
          copyInto(p, linearCombination([p, update], [1, (-this.lr * this.lrScale) / c1]));
          copyInto(m, m1);
          copyInto(v, v1);
        }),
      ),
    );
  }

  override dispose(): void {
    super.dispose();
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
    this.moments.length = 0;
  }
}
