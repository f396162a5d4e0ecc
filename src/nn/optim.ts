// The SGD optimizer (torch.optim.SGD) with a fused, in-place WGSL update (sgd.wgsl), and
// learning-rate schedules as pure functions of the epoch.
//
// step() records one dispatch per parameter that has a gradient; nothing is read back. Momentum
// buffers are kept tensors created on a parameter's first step (PyTorch's buf = g), and stay
// with the optimizer until dispose().
import sgdWgsl from '../shaders/sgd.wgsl';
import gridWgsl from '../shaders/lib/grid.wgsl';
import { Kernel, Tensor, clone, gridStride, keep, launch, noGrad, setPhase } from '../engine/index.js';

const sgdKernel = new Kernel('sgd', [gridWgsl, sgdWgsl], 'sgd');
const sgdMomentumKernel = new Kernel('sgd_momentum', [gridWgsl, sgdWgsl], 'sgd_momentum');

export interface SGDOptions {
  lr: number;
  momentum?: number;
  /** Scales the new gradient in the momentum buffer by 1 - dampening (not on the first step). */
  dampening?: number;
  /** L2 penalty: weightDecay * param is added to the gradient. */
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD {
  readonly params: readonly Tensor[];
  /** Read at every step(): set it from a schedule between steps. */
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  private readonly buffers: (Tensor | null)[];

  constructor(params: readonly Tensor[], opts: SGDOptions) {
    const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = opts;
    if (!(lr >= 0)) throw new Error(`SGD: invalid learning rate ${lr}`);
    if (!(momentum >= 0)) throw new Error(`SGD: invalid momentum ${momentum}`);
    if (!(weightDecay >= 0)) throw new Error(`SGD: invalid weight decay ${weightDecay}`);
    if (nesterov && (momentum <= 0 || dampening !== 0)) throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening');
    if (new Set(params).size !== params.length) throw new Error('SGD: a parameter appears twice');
    for (const p of params) {
      if (p.dtype !== 'f32') throw new Error(`SGD: parameters must be f32, got ${p}`);
    }
    this.params = [...params];
    this.lr = lr;
    this.momentum = momentum;
    this.dampening = dampening;
    this.weightDecay = weightDecay;
    this.nesterov = nesterov;
    this.buffers = params.map(() => null);
  }

  /** Updates every parameter that has a gradient, in place. */
  step(): void {
    const previousPhase = setPhase('optimizer'); // the profiler's label for these launches
    try {
      this.params.forEach((p, i) => this.update(p, i));
    } finally {
      setPhase(previousPhase);
    }
  }

  /** One parameter's fused update: one dispatch. */
  private update(p: Tensor, i: number): void {
    const grad = p.grad;
    if (!grad || p.size === 0) return;
    if (grad.size !== p.size) throw new Error(`SGD: gradient ${grad} does not match parameter ${p}`);
    const first = this.buffers[i] === null;
    const useMomentum = this.momentum !== 0;
    if (useMomentum && first) this.buffers[i] = keep(new Tensor(p.shape, 'f32'));
    launch(useMomentum ? sgdMomentumKernel : sgdKernel, {
      op: 'sgd step',
      params: (w) => w.u32(p.size, first ? 1 : 0, this.nesterov ? 1 : 0).f32(this.lr, this.momentum, this.dampening, this.weightDecay),
      buffers: [p.buffer, grad.buffer, useMomentum ? this.buffers[i]!.buffer : null],
      workgroups: gridStride(p.size, 256),
      shapes: [p.shape],
    });
  }

  /** Frees and clears every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The momentum buffer of parameter i (null before its first step or without momentum). */
  momentumBuffer(i: number): Tensor | null {
    return this.buffers[i] ?? null;
  }

  /**
   * The optimizer state by name, as torch's state_dict()['state'][i]['momentum_buffer'] flattened
   * to `state.{i}.momentum_buffer`: the live buffers (not copies; do not dispose them).
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.buffers.forEach((b, i) => b && out.set(`state.${i}.momentum_buffer`, b));
    return out;
  }

  /** Copies momentum buffers in from stateDict()'s format; parameters absent from it start afresh. */
  loadStateDict(state: ReadonlyMap<string, Tensor>): void {
    for (const [key, t] of state) {
      const i = Number(/^state\.(\d+)\.momentum_buffer$/.exec(key)?.[1] ?? NaN);
      if (!(i < this.params.length)) throw new Error(`SGD.loadStateDict: unexpected entry '${key}'`);
      if (t.size !== this.params[i]!.size) throw new Error(`SGD.loadStateDict: '${key}' is ${t}, parameter ${i} is ${this.params[i]}`);
    }
    // Copy first, free after: `state` may hold this optimizer's own buffers.
    const copies = this.params.map((p, i) => {
      const t = state.get(`state.${i}.momentum_buffer`);
      if (!t) return null;
      const view = t.reshape(p.shape);
      const copy = keep(noGrad(() => clone(view)));
      view.dispose();
      return copy;
    });
    this.dispose();
    copies.forEach((c, i) => (this.buffers[i] = c));
  }

  /** Frees the momentum buffers. */
  dispose(): void {
    this.buffers.forEach((b, i) => {
      b?.dispose();
      this.buffers[i] = null;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Learning-rate schedules: the learning rate for a 0-based epoch index.

export type LrSchedule = (epoch: number) => number;

/**
 * The paper's schedule (Tatro et al. 2020, training of endpoints and curves):
 * lr0 * 0.5^floor(epoch / 20) * 0.9996^epoch.
 */
export function tatroSchedule(lr0: number, halveEvery = 20, decay = 0.9996): LrSchedule {
  return (epoch) => lr0 * 0.5 ** Math.floor(epoch / halveEvery) * decay ** epoch;
}

/**
 * Garipov et al. 2018's schedule (dnn-mode-connectivity, train.py learning_rate_schedule): with
 * alpha = epoch / totalEpochs, 1x while alpha <= 0.5, then linear down to 0.01x at alpha = 0.9,
 * then 0.01x.
 */
export function garipovSchedule(lr0: number, totalEpochs: number): LrSchedule {
  return (epoch) => {
    const alpha = epoch / totalEpochs;
    const factor = alpha <= 0.5 ? 1 : alpha <= 0.9 ? 1 - ((alpha - 0.5) / 0.4) * 0.99 : 0.01;
    return lr0 * factor;
  };
}

/** torch.optim.lr_scheduler.StepLR: lr0 * gamma^floor(epoch / stepSize). */
export function stepSchedule(lr0: number, stepSize: number, gamma = 0.1): LrSchedule {
  return (epoch) => lr0 * gamma ** Math.floor(epoch / stepSize);
}

/** torch.optim.lr_scheduler.CosineAnnealingLR (closed form): lrMin + (lr0 - lrMin)(1 + cos(pi epoch / T)) / 2. */
export function cosineSchedule(lr0: number, totalEpochs: number, lrMin = 0): LrSchedule {
  return (epoch) => lrMin + ((lr0 - lrMin) * (1 + Math.cos((Math.PI * epoch) / totalEpochs))) / 2;
}
