// PAM's Sinkhorn relaxation (`curve --pam-relax sinkhorn`; beyond Tatro et al. 2020, whose
// P-step is the projected gradient of pam.ts). Each group's P is the Sinkhorn normalization of a
// real logits matrix L at a temperature tau (sinkhorn.ts):
//   P = Sinkhorn(L / tau),   L = I at the start (the previous P),
// doubly stochastic without a projection or a proximal term (up to the convergence of a step's
// warm-started rounds: columns exact, rows within 2e-2 in the measured runs). The P-step
// minimizes the projected variant's objective: the cross-entropy of the PAM network (pam-curve.ts,
// bend 1/2 theta_A + 1/2 P theta_B + phi) at one t per batch, a Monte Carlo estimate of the curve
// loss integrated over t. With the paper's one outer iteration phi is 0 during the P-step, so that
// curve is the straight line from theta_A to P theta_B, the path Sinkhorn re-basin (Pena et al.
// 2023) also relaxes P on; what differs is PAM's rounding and phi-step around it. tau is annealed
// geometrically per step,
//   tau_s = tau_start (tau_end / tau_start)^(s / (S - 1)),  s = 0 .. S - 1 over the phase's S steps,
// from a blurred P (tau = 1: every entry of Sinkhorn(I) is near 1/n for wide layers) that the
// loss's gradient can reshape to a sharp one (tau = 0.01) near a vertex of B_n. The logits are
// trained by Adam (nn/adam.ts): the gradient through exp(L / tau) scales with 1 / tau and with P's
// entries, which span orders of magnitude. Adam's step is scaled by tau / tau_start, so a step
// moves L / tau, the exponent, by about lr whatever tau is: at a fixed step in L the exponent
// would jump by lr / tau (5 at lr 0.05, tau 0.01), and the few warm-started Sinkhorn rounds of a
// step could not follow (rows a third off 1 in a measured run); the solution also hardens as tau
// falls instead of jumping between vertices. The rounding is the projected variant's
// (pam-run.ts), on Sinkhorn(L / tau_end) solved to 1e-4.
//
// Batching: groups of one size are stacked into one [G, n, n] logits tensor, so each size costs
// one chain of Sinkhorn dispatches (an MLP of equal hidden widths: one chain for all its groups);
// a group's P is a slice of the stack's P.
import { Tensor, exp, keep, linearCombination, noGrad, reshape, slice, tensor, tidy, zeros } from '../engine/index.js';
import { Adam } from '../nn/adam.js';
import { CIFAR_AUGMENT, DataLoader, type ImageDataset } from '../nn/data/index.js';
import { copyInto, type Module } from '../nn/module.js';
import { RunStoppedError, lossAndLogits, trainLoop } from '../nn/train.js';
import { makeSchedule } from '../nn/train-run.js';
import type { CurveTrainingOptions } from './curve-run.js';
import { permutationDistance } from './pam.js';
import { pamWeightsAt, type PamCurveParts } from './pam-curve.js';
import type { PamEpochLog, PamHooks } from './pam-run.js';
import { SINKHORN_ITERATIONS, logSinkhorn, sinkhornError, solveSinkhorn } from './sinkhorn.js';

export const PAM_RELAXATIONS = ['projected', 'sinkhorn'] as const;
export type PamRelaxation = (typeof PAM_RELAXATIONS)[number];

/** The Sinkhorn P-step's temperatures: a blurred start, a near-permutation end. */
export const SINKHORN_DEFAULTS = { pamTauStart: 1, pamTauEnd: 0.01 } as const;

/** tau of step s of `total`: geometric from start to end (start alone when total is 1). */
export function annealedTau(start: number, end: number, s: number, total: number): number {
  return total <= 1 ? start : start * (end / start) ** (s / (total - 1));
}

interface Stack {
  size: number;
  names: string[];
  /** [G, n, n] logits, trained. */
  logits: Tensor;
  /** [G, n, n] potentials F = tau log P - L of the last step (sinkhorn.ts), detached. */
  potentials: Tensor;
}

/** The relaxed permutations of the groups as Sinkhorn(L / tau), one logits stack per group size. */
export class SinkhornPermutations {
  readonly stacks: Stack[] = [];

  constructor(groups: readonly { name: string; size: number }[]) {
    const sizes = [...new Set(groups.map((g) => g.size))];
    for (const size of sizes) {
      const names = groups.filter((g) => g.size === size).map((g) => g.name);
      const identities = new Float32Array(names.length * size * size);
      for (let k = 0; k < names.length; k++) for (let i = 0; i < size; i++) identities[(k * size + i) * size + i] = 1;
      const logits = keep(tensor(identities, [names.length, size, size]));
      logits.requiresGrad = true;
      this.stacks.push({ size, names, logits, potentials: keep(zeros(logits.shape)) });
    }
  }

  /** The trained tensors (for the optimizer). */
  parameters(): Tensor[] {
    return this.stacks.map((s) => s.logits);
  }

  /** The logits by size, for the NaN check and the P file. */
  named(): Map<string, Tensor> {
    return new Map(this.stacks.map((s) => [`logits.${s.size}`, s.logits]));
  }

  /**
   * Every group's P = Sinkhorn((L + F) / tau) after SINKHORN_ITERATIONS rounds from the warm
   * start F, differentiable in L; with `advance`, F moves to this solution for the next call.
   */
  matrices(tau: number, advance = true): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const s of this.stacks) {
      const logP = logSinkhorn(linearCombination([s.logits, s.potentials], [1 / tau, 1 / tau]), SINKHORN_ITERATIONS);
      if (advance) noGrad(() => tidy(() => copyInto(s.potentials, linearCombination([logP, s.logits], [tau, -1]))));
      const p = exp(logP);
      s.names.forEach((name, k) => out.set(name, reshape(slice(p, [k], [k + 1]), [s.size, s.size])));
    }
    return out;
  }

  /** Per group, P at tau as matrices(tau, false) gives it (row-major), and the largest |row or column sum - 1|. */
  async read(tau: number): Promise<{ matrices: Map<string, Float32Array>; error: number }> {
    const matrices = new Map<string, Float32Array>();
    let error = 0;
    for (const s of this.stacks) {
      const logP = keep(noGrad(() => tidy(() => logSinkhorn(linearCombination([s.logits, s.potentials], [1 / tau, 1 / tau]), SINKHORN_ITERATIONS))));
      error = Math.max(error, await readError(logP));
      const p = noGrad(() => exp(logP));
      split(s, (await p.toArray()) as Float32Array, matrices);
      p.dispose();
      logP.dispose();
    }
    return { matrices, error };
  }

  /** Per group, Sinkhorn(L / tau) solved to `tolerance` from the warm start (what the rounding reads). */
  async solved(tau: number, tolerance = 1e-4): Promise<{ matrices: Map<string, Float32Array>; error: number; iterations: number }> {
    const matrices = new Map<string, Float32Array>();
    let error = 0;
    let iterations = 0;
    for (const s of this.stacks) {
      const r = await solveSinkhorn(s.logits, tau, { potentials: s.potentials, tolerance });
      error = Math.max(error, r.error);
      iterations = Math.max(iterations, r.iterations);
      const p = noGrad(() => exp(r.logP));
      split(s, (await p.toArray()) as Float32Array, matrices);
      for (const t of [p, r.logP, r.potentials]) t.dispose();
    }
    return { matrices, error, iterations };
  }

  dispose(): void {
    for (const s of this.stacks) {
      s.logits.grad?.dispose();
      s.logits.dispose();
      s.potentials.dispose();
    }
    this.stacks.length = 0;
  }
}

async function readError(logP: Tensor): Promise<number> {
  const e = sinkhornError(logP);
  const value = (await e.toArray())[0]!;
  e.dispose();
  return value;
}

function split(s: Stack, values: Float32Array, into: Map<string, Float32Array>): void {
  const nn = s.size * s.size;
  s.names.forEach((name, k) => into.set(name, values.slice(k * nn, (k + 1) * nn)));
}

/** What the Sinkhorn P-step needs from pam-run.ts. */
export interface SinkhornPStepArgs {
  model: Module;
  parts: PamCurveParts;
  groups: readonly { name: string; size: number }[];
  train: ImageDataset;
  options: CurveTrainingOptions & { pamPEpochs: number };
  /** Adam's initial learning rate (the curve's schedule over the phase). */
  lr: number;
  /** The t of a step, as the projected P-step draws it. */
  tAt: (epoch: number, step: number) => number;
  readEvery?: number;
  stop?: AbortSignal;
  hooks: PamHooks;
  /** The record's P-step log, appended to per epoch. */
  log: PamEpochLog[];
  /** Writes the logits after an epoch (DIR/pam-p.safetensors). */
  save: (logits: Map<string, Tensor>, epoch: number) => Promise<void>;
}

/**
 * The Sinkhorn P-step (file comment): pamPEpochs epochs of Adam on the logits with tau annealed
 * per step; returns every group's soft P at tau_end solved to 1e-4, for the rounding. It starts
 * afresh on a resume (the warm potentials and Adam's moments are not saved).
 */
export async function runSinkhornPStep(a: SinkhornPStepArgs): Promise<{ relaxed: Map<string, Float32Array>; seconds: number; iterations: number; error: number }> {
  const { model, parts, options } = a;
  const tauStart = options.pamTauStart ?? SINKHORN_DEFAULTS.pamTauStart;
  const tauEnd = options.pamTauEnd ?? SINKHORN_DEFAULTS.pamTauEnd;
  const relaxation = new SinkhornPermutations(a.groups);
  const optimizer = new Adam(relaxation.parameters(), { lr: a.lr });
  try {
    const loader = new DataLoader(a.train, { batchSize: options.batchSize, shuffle: true, augment: options.augment ? CIFAR_AUGMENT : null, seed: options.seed });
    const total = options.pamPEpochs * loader.length;
    const tauAt = (epoch: number, step: number) => annealedTau(tauStart, tauEnd, epoch * loader.length + step, total);
    const started = performance.now();
    await trainLoop({
      model,
      optimizer,
      schedule: makeSchedule(options.schedule, a.lr, options.pamPEpochs),
      train: loader,
      epochs: options.pamPEpochs,
      readEvery: a.readEvery,
      stop: a.stop,
      objective: ({ x, y }, epoch, step) => {
        const tau = tauAt(epoch, step);
        optimizer.lrScale = tau / tauStart; // read by this step's update
        return model.withParameters(pamWeightsAt(parts, relaxation.matrices(tau), a.tAt(epoch, step)), () => lossAndLogits(model, x, y));
      },
      watch: () => relaxation.named(),
      onProgress: a.hooks.onProgress,
      onEpochEnd: async (log) => {
        const tau = tauAt(log.epoch - 1, loader.length - 1);
        const { matrices, error } = await relaxation.read(tau);
        const distance: Record<string, number> = {};
        for (const g of a.groups) distance[g.name] = permutationDistance(matrices.get(g.name)!, g.size);
        const entry: PamEpochLog = { epoch: log.epoch, train_loss: log.train_loss, train_acc: log.train_acc, lr: log.lr, seconds: log.seconds, distance, tau, sinkhornError: error };
        a.log.push(entry);
        await a.save(relaxation.named(), log.epoch);
        a.hooks.onPEpochEnd?.(entry);
      },
    }).catch((e) => {
      throw e instanceof RunStoppedError ? new RunStoppedError(e.signal, `the PAM P-step's ${e.where}`, e.epoch) : e;
    });
    const solved = await relaxation.solved(tauEnd);
    return { relaxed: solved.matrices, seconds: (performance.now() - started) / 1000, iterations: solved.iterations, error: solved.error };
  } finally {
    optimizer.dispose();
    relaxation.dispose();
  }
}
