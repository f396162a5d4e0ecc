// REPAIR (Jordan et al. 2023, "REPAIR: REnormalizing Permuted Activations for Interpolation
// Repair"; KellerJordan/REPAIR): interpolating two aligned networks, (1 - t) theta_A + t theta_B,
// shrinks the spread of hidden activations (averaging imperfectly correlated units lowers their
// variance, and the loss rises with the collapse). REPAIR restores, for every hidden channel c, the
// pre-activation mean and standard deviation that interpolate the endpoints':
//   mu_T = (1 - t) mu_A + t mu_B,    sigma_T = (1 - t) sigma_A + t sigma_B.
// The interpolated network's channel has mean mu_I and std sigma_I on the data; the affine map
//   y' = s (y - mu_I) + mu_T,   s = sigma_T / sigma_I
// gives it exactly the targets. When the channel's pre-activation is the output of a module that
// is affine per channel in (weight row c, bias c), y_c = weight[c] . z + bias[c] with z
// independent of the row (Linear, Conv2d, and BatchNorm in eval mode, whose weight is gamma),
// the map folds into that module: weight[c] *= s, bias[c] <- s bias[c] + (mu_T - s mu_I). No layer
// is inserted, and the result is an ordinary state dict of the architecture.
//
// The layers are repaired in forward order, each measured after the ones before it are repaired
// (a correction changes every later layer's input): one pass over the data for the endpoints, then
// one per layer. Statistics are over every sample of a channel (each spatial position of a conv map
// is a sample), population std, in eval mode.
//
// A layer whose pre-activation is a sum of terms (a ResNet's residual stream: block output plus
// shortcut) is not repairable this way (the shortcut carries the earlier stream through) and is
// left out; repairableLayers lists the others. For batch-norm networks the usual repair is the BN
// re-estimation of interpolate.ts (REPAIR's "reset BN"); folding into eval-mode BN is the
// closed-form alternative for a fixed set of running statistics.
import { Tensor, add, clone, keep, mean, mul, noGrad, reshape, runtime, square, sub, sum, tensor, tidy } from '../engine/index.js';
import { BatchNorm } from '../nn/layers/batchnorm.js';
import { Conv2d } from '../nn/layers/conv.js';
import { Linear } from '../nn/layers/linear.js';
import { copyInto, type Module, type StateDict } from '../nn/module.js';
import { collectActivations, withAlignmentMode } from './activations.js';
import { inputs, type AlignmentData } from './align.js';
import { interpolateInto } from './interpolate.js';
import { disposeStateDict } from './permute.js';
import type { AlignedLayer, PermutationSpec } from './spec.js';
import { permutationSpec } from './specs.js';

export interface RepairOptions {
  /** Use at most this many images (the first ones) of `data`; default all. */
  samples?: number;
  /** Names of the spec layers to repair (default: every repairable layer). */
  layers?: string[];
  /**
   * A model of the same architecture to run the interpolated network in; it is left holding the
   * repaired network. Default: modelB, whose own state is saved and restored afterwards.
   */
  workspace?: Module;
  /**
   * Sets the workspace to the path's point at t before the repair (default: the straight line
   * (1 - t) A + t B). A curve passes its own point (Curve.loadInto); the targets stay the
   * endpoints' interpolated statistics, (1 - t) mu_A + t mu_B and (1 - t) sigma_A + t sigma_B.
   */
  load?: (workspace: Module) => void;
}

/**
 * A sigma_I at or below this fraction of |mu_I| + sigma_T is a constant channel (a rounding
 * residue, not a spread): its scale stays 1 and only its mean moves (an affine map cannot give a
 * constant a spread).
 */
export const REPAIR_STD_FLOOR = 1e-6;

/** Per-channel mean and population std of a layer on the data. */
export interface ChannelStatistics {
  mean: Float64Array;
  std: Float64Array;
}

/**
 * The spec layers REPAIR can correct, in forward order: one term, the output of a Linear, Conv2d
 * or BatchNorm module with a bias whose rows are the layer's units.
 */
export function repairableLayers(model: Module, spec: PermutationSpec = permutationSpec(model)): AlignedLayer[] {
  const modules = new Map(model.namedModules());
  const state = model.stateDict();
  const sizes = new Map(spec.groups.map((g) => [g.name, g.size]));
  return spec.layers.filter((l) => {
    if (l.terms.length !== 1) return false;
    const m = modules.get(l.terms[0]!);
    if (!(m instanceof Linear || m instanceof Conv2d || m instanceof BatchNorm)) return false;
    const [w, b] = [state.get(`${l.terms[0]}.weight`), state.get(`${l.terms[0]}.bias`)];
    return !!w && !!b && w.shape[0] === sizes.get(l.group) && b.size === w.shape[0];
  });
}

/**
 * The interpolated network (1 - t) A + t B with REPAIR applied (see the file comment), as a new
 * state dict (kept tensors: the caller disposes them). A and B are the endpoints, B already
 * aligned to A; `data` is read once per repaired layer plus once, so it must be re-iterable (an
 * array of batches, or a loader).
 */
export async function repairInterpolation(modelA: Module, modelB: Module, t: number, data: AlignmentData, opts: RepairOptions = {}): Promise<StateDict> {
  if (!Number.isFinite(t)) throw new Error(`repair: t must be finite, got ${t}`);
  if (opts.workspace === modelA || opts.workspace === modelB) throw new Error('repair: the workspace must be a third model');
  const spec = permutationSpec(modelA);
  const layers = chooseLayers(modelA, spec, opts.layers);
  const endpoints = await layerStatistics([modelA, modelB], spec, layers, data, opts.samples);
  const workspace = opts.workspace ?? modelB;
  const savedB = opts.workspace ? null : cloneState(modelB.stateDict());
  try {
    if (opts.load) opts.load(workspace);
    else interpolateInto(workspace, modelA.stateDict(), savedB ?? modelB.stateDict(), t);
    for (const layer of layers) {
      const [a, b] = [endpoints[0]!.get(layer.name)!, endpoints[1]!.get(layer.name)!];
      const [interpolated] = await layerStatistics([workspace], spec, [layer], data, opts.samples);
      const { mean: muI, std: sigmaI } = interpolated!.get(layer.name)!;
      const n = muI.length;
      const scale = new Float32Array(n);
      const shift = new Float32Array(n);
      for (let c = 0; c < n; c++) {
        const muT = (1 - t) * a.mean[c]! + t * b.mean[c]!;
        const sigmaT = (1 - t) * a.std[c]! + t * b.std[c]!;
        const s = sigmaI[c]! > REPAIR_STD_FLOOR * (Math.abs(muI[c]!) + sigmaT) ? sigmaT / sigmaI[c]! : 1;
        scale[c] = s;
        shift[c] = muT - s * muI[c]!;
      }
      foldAffine(workspace.stateDict(), layer.terms[0]!, scale, shift);
    }
    return cloneState(workspace.stateDict());
  } finally {
    if (savedB) {
      modelB.loadStateDict(savedB);
      disposeStateDict(savedB);
    }
  }
}

/**
 * Per-channel statistics of the pre-activations of `layers`, for each model, over the first
 * `samples` images of `data` (eval mode; modes restored afterwards).
 */
export async function layerStatistics(
  models: Module[],
  spec: PermutationSpec,
  layers: AlignedLayer[],
  data: AlignmentData,
  samples?: number,
): Promise<Map<string, ChannelStatistics>[]> {
  const only: PermutationSpec = { ...spec, layers };
  const stats = models.map(() => new Map(layers.map((l) => [l.name, new UnitStatistics()])));
  try {
    let images = 0;
    await withAlignmentMode(models, false, async () => {
      for (const x of inputs(data, samples)) {
        images += x.shape[0]!;
        tidy(() =>
          noGrad(() => {
            models.forEach((model, k) => {
              const acts = collectActivations(model, only, x, { preActivation: true });
              for (const [name, s] of stats[k]!) s.update(acts.get(name)!);
            });
          }),
        );
        await runtime().stream.finish();
      }
    });
    if (images === 0) throw new Error('repair: no data (a one-shot iterator read twice?)');
    return await Promise.all(stats.map(async (m) => new Map(await Promise.all([...m].map(async ([name, s]) => [name, await s.read()] as const)))));
  } finally {
    for (const m of stats) for (const s of m.values()) s.dispose();
  }
}

function chooseLayers(model: Module, spec: PermutationSpec, names?: string[]): AlignedLayer[] {
  const repairable = repairableLayers(model, spec);
  if (!names) return repairable;
  for (const name of names) {
    if (!spec.layers.some((l) => l.name === name)) throw new Error(`repair: ${spec.architecture} has no layer '${name}'`);
    if (!repairable.some((l) => l.name === name)) throw new Error(`repair: layer '${name}' is not one module's output with a bias; it cannot be repaired by folding`);
  }
  return repairable.filter((l) => names.includes(l.name));
}

/** weight[c] *= scale[c] (every entry of row c), bias[c] <- scale[c] bias[c] + shift[c], in place. */
function foldAffine(state: StateDict, module: string, scale: Float32Array, shift: Float32Array): void {
  const weight = state.get(`${module}.weight`)!;
  const bias = state.get(`${module}.bias`)!;
  noGrad(() =>
    tidy(() => {
      const s = tensor(scale, [scale.length]);
      const rowScale = reshape(s, [scale.length, ...weight.shape.slice(1).map(() => 1)]);
      copyInto(weight, mul(weight, rowScale));
      copyInto(bias, add(mul(bias, s), tensor(shift, [shift.length])));
    }),
  );
}

function cloneState(state: StateDict): StateDict {
  return noGrad(() => new Map([...state].map(([name, t]) => [name, keep(clone(t))])));
}

/**
 * Streamed per-channel mean and centred sum of squares of one activation ([N, C] or
 * [N, C, H, W]: channel axis 1, every other position a sample), batches merged as in
 * CrossStatistics (Chan et al.; statistics.ts explains the numerics).
 */
class UnitStatistics {
  private count = 0;
  private mean: Tensor | null = null;
  private m2: Tensor | null = null;

  update(x: Tensor): void {
    tidy(() => {
      const channels = x.shape[1]!;
      const axes = [...x.shape.keys()].filter((a) => a !== 1);
      const m = x.size / channels;
      if (m === 0) return;
      const batchMean = mean(x, axes);
      const broadcast = x.shape.map((d, a) => (a === 1 ? d : 1));
      const batchM2 = sum(square(sub(x, reshape(batchMean, broadcast))), axes);
      const n = this.count;
      let next = { mean: batchMean, m2: batchM2 };
      if (n > 0) {
        const d = sub(batchMean, this.mean!);
        next = {
          mean: add(this.mean!, mul(d, m / (n + m))),
          m2: add(add(this.m2!, batchM2), mul(square(d), (n * m) / (n + m))),
        };
      }
      this.dispose();
      this.mean = keep(next.mean);
      this.m2 = keep(next.m2);
      this.count = n + m;
    });
  }

  async read(): Promise<ChannelStatistics> {
    const [mu, m2] = await Promise.all([this.mean!.toArray(), this.m2!.toArray()]);
    return { mean: Float64Array.from(mu), std: Float64Array.from(m2, (v) => Math.sqrt(Math.max(v, 0) / this.count)) };
  }

  dispose(): void {
    this.mean?.dispose();
    this.m2?.dispose();
    this.mean = this.m2 = null;
  }
}
