// Neuron alignment (Tatro et al. 2020, section "Neuron alignment"; NeuronAlignment
// alignment/align_models.py): for every group of interchangeable units, the permutation of
// network B's units that maximizes the total correlation of matched activations with network A,
// and B's state dict with it applied (the same function, with units in A's order).
//
// Every matching comes from the original, unaligned networks: permuting B only reorders its
// activations, so the layers need not be solved in sequence. The statistics of all layers are
// gathered in one pass over the data (both networks run on each batch); each group's matching is
// an exact linear assignment on its correlation matrix, or on the sum of its layers' matrices
// (a ResNet's residual stream). Units the data cannot see (dead or constant: no correlation
// signal) are then matched among themselves by weight similarity, a step the paper does not have
// (dead-units.ts; deadUnits: 'arbitrary' leaves the paper's tie-breaking).
import { noGrad, runtime, sameShape, slice, tidy, type Tensor } from '../engine/index.js';
import type { Batch } from '../nn/data/index.js';
import type { Module, StateDict } from '../nn/module.js';
import { collectActivations, withAlignmentMode } from './activations.js';
import { solveAssignment } from './assignment.js';
import { permuteStateDict, type Permutations } from './permute.js';
import { groupOfLayer, type PermutationSpec } from './spec.js';
import { permutationSpec } from './specs.js';
import { CrossStatistics } from './statistics.js';
import { DEAD_UNIT_METHODS, SILENT_STD, matchSilentUnits, silentUnits, type DeadUnitMethod, type SilentGroupReport } from './dead-units.js';

/** Numbered batches (a DataLoader: the first `length` batches of epoch 0 are read), or tensors. */
export type AlignmentData = { readonly length: number; batch(epoch: number, index: number): Batch } | Iterable<Tensor>;

export interface CorrelationOptions {
  /** Correlate BN outputs before the ReLU (default: post-activations, as the official code). */
  preActivation?: boolean;
  /** Use at most this many images (the first ones); default all. The paper: 10,000. */
  samples?: number;
  /**
   * Normalize with each batch's statistics instead of the running ones (the BN layers alone run
   * in training mode; running statistics are restored afterwards). Default false: eval mode.
   */
  batchStatistics?: boolean;
}

/** Per layer, its [A units x B units] correlation matrix, row-major, and each unit's std. */
export interface LayerCorrelations {
  spec: PermutationSpec;
  matrices: Map<string, Float32Array>;
  /**
   * Population standard deviation of each unit of A and of B over the samples. A unit with
   * std 0 (a dead ReLU) correlates 0 with everything, so its correlation match is arbitrary
   * (alignModels then matches such units by their weights: dead-units.ts).
   */
  stdA: Map<string, Float32Array>;
  stdB: Map<string, Float32Array>;
  /** Images seen. */
  images: number;
}

/** Input batches of `data` and whether this module made them (and so disposes them). */
function* rawBatches(data: AlignmentData): Generator<[Tensor, boolean]> {
  if (Symbol.iterator in data) {
    for (const x of data) yield [x, false];
  } else {
    for (let i = 0; i < data.length; i++) {
      const { x, y } = data.batch(0, i);
      y.dispose();
      yield [x, true];
    }
  }
}

/** The batches of `data` cut to the first `samples` images; each is valid until the next. */
export function* inputs(data: AlignmentData, samples = Infinity): Generator<Tensor> {
  let seen = 0;
  if (samples <= 0) return;
  for (const [x, owned] of rawBatches(data)) {
    const n = x.shape[0]!;
    const take = Math.min(n, samples - seen);
    const t = take === n ? x : noGrad(() => slice(x, [0], [take]));
    try {
      yield t;
    } finally {
      if (t !== x) t.dispose();
      if (owned) x.dispose();
    }
    seen += take;
    if (seen >= samples) return;
  }
}

/**
 * Streams `data` through both networks (no gradients, dropout off, BN per `batchStatistics`) and
 * returns every layer's correlation matrix between A's and B's units. The spec is A's; B must
 * have the same architecture and shapes.
 */
export async function layerCorrelations(modelA: Module, modelB: Module, data: AlignmentData, opts: CorrelationOptions = {}): Promise<LayerCorrelations> {
  const spec = permutationSpec(modelA);
  checkSameShapes(modelA.stateDict(), modelB.stateDict());
  const groups = groupOfLayer(spec);
  const stats = new Map(spec.layers.map((l) => [l.name, new CrossStatistics(groups.get(l.name)!.size, groups.get(l.name)!.size)]));
  let images = 0;
  try {
    await withAlignmentMode([modelA, modelB], !!opts.batchStatistics, async () => {
      for (const x of inputs(data, opts.samples)) {
        images += x.shape[0]!;
        tidy(() =>
          noGrad(() => {
            const a = collectActivations(modelA, spec, x, opts);
            const b = collectActivations(modelB, spec, x, opts);
            for (const [name, s] of stats) s.update(a.get(name)!, b.get(name)!);
          }),
        );
        // Bound the queued work and surface any GPU error at the batch that caused it.
        await runtime().stream.finish();
      }
    });
    if (images === 0) throw new Error('alignment: no data');
    const matrices = new Map<string, Float32Array>();
    const stdA = new Map<string, Float32Array>();
    const stdB = new Map<string, Float32Array>();
    for (const [name, s] of stats) {
      const c = s.correlation();
      const [sa, sb] = s.stds();
      matrices.set(name, await c.toArray('f32'));
      stdA.set(name, await sa.toArray('f32'));
      stdB.set(name, await sb.toArray('f32'));
      for (const t of [c, sa, sb]) t.dispose();
    }
    return { spec, matrices, stdA, stdB, images };
  } finally {
    for (const s of stats.values()) s.dispose();
  }
}

function checkSameShapes(a: StateDict, b: StateDict): void {
  for (const [name, t] of a) {
    const u = b.get(name);
    if (!u || !sameShape(u.shape, t.shape)) {
      throw new Error(`alignment: the networks differ at '${name}' ([${t.shape.join(', ')}] vs ${u ? `[${u.shape.join(', ')}]` : 'missing'})`);
    }
  }
  if (a.size !== b.size) throw new Error('alignment: the networks have different tensors');
}

/** An exact assignment solver: row i (an A unit) gets column match[i] (a B unit). */
export type AssignmentSolver = (matrix: Float64Array, n: number) => Int32Array;

export const defaultSolver: AssignmentSolver = (matrix, n) => solveAssignment(matrix, { maximize: true, rows: n, cols: n }).match;

/**
 * Each group's permutation: the assignment maximizing the summed correlation of its solveFrom
 * layers. perm[i] = the B unit matched to A unit i (apply with permuteStateDict: B's unit
 * perm[i] becomes unit i).
 */
export function matchGroups(spec: PermutationSpec, matrices: Map<string, Float32Array>, solver: AssignmentSolver = defaultSolver): Permutations {
  const perms: Permutations = new Map();
  for (const g of spec.groups) {
    const total = new Float64Array(g.size * g.size);
    for (const layer of g.solveFrom) {
      const c = matrices.get(layer);
      if (!c || c.length !== total.length) throw new Error(`alignment: no ${g.size} x ${g.size} correlation for layer '${layer}'`);
      for (let i = 0; i < c.length; i++) total[i] += c[i]!;
    }
    perms.set(g.name, solver(total, g.size));
  }
  return perms;
}

/** Mean over units i of C[i][perm[i]] (perm = identity: the diagonal mean, before alignment). */
export function meanMatchedCorrelation(matrix: ArrayLike<number>, n: number, perm?: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += matrix[i * n + (perm ? perm[i]! : i)]!;
  return s / n;
}

export interface LayerReport {
  layer: string;
  group: string;
  units: number;
  /** Mean correlation of unit i of A with unit i of B. */
  before: number;
  /** Mean correlation of unit i of A with its matched unit perm[i] of B, over all units. */
  after: number;
  /**
   * The same mean over the signalling pairs alone (both units' std >= the silent threshold in this
   * layer; NaN when there is none): a silent unit correlates 0 with everything, so `after` counts
   * it as 0 even when its match is exact.
   */
  afterSignalling: number;
  /** Pairs (i, perm[i]) whose two units signal in this layer. */
  signalling: number;
  /** Units of A and of B whose std on the data is below the silent threshold (dead or constant). */
  deadA: number;
  deadB: number;
  /** How pairs with a silent unit were matched (dead-units.ts). */
  deadMatching: DeadUnitMethod;
}

export interface ReportOptions {
  /** How the permutations matched silent units (default 'weights', alignModels' default). */
  deadUnits?: DeadUnitMethod;
  /** Std below which a unit counts as silent (default SILENT_STD). */
  silentStd?: number;
}

export function layerReports(correlations: LayerCorrelations, perms: Permutations, opts: ReportOptions = {}): LayerReport[] {
  const { spec, matrices, stdA, stdB } = correlations;
  const threshold = opts.silentStd ?? SILENT_STD;
  const groups = groupOfLayer(spec);
  const silent = (std: Float32Array) => std.reduce((n, s) => n + (s < threshold ? 1 : 0), 0);
  return spec.layers.map((l) => {
    const g = groups.get(l.name)!;
    const c = matrices.get(l.name)!;
    const perm = perms.get(g.name);
    const sa = stdA.get(l.name)!;
    const sb = stdB.get(l.name)!;
    let sum = 0;
    let signalling = 0;
    for (let i = 0; i < g.size; i++) {
      const j = perm ? perm[i]! : i;
      if (sa[i]! >= threshold && sb[j]! >= threshold) {
        sum += c[i * g.size + j]!;
        signalling++;
      }
    }
    return {
      layer: l.name,
      group: g.name,
      units: g.size,
      before: meanMatchedCorrelation(c, g.size),
      after: meanMatchedCorrelation(c, g.size, perm),
      afterSignalling: signalling ? sum / signalling : NaN,
      signalling,
      deadA: silent(sa),
      deadB: silent(sb),
      deadMatching: opts.deadUnits ?? 'weights',
    };
  });
}

export interface AlignOptions extends CorrelationOptions {
  solver?: AssignmentSolver;
  /** Keep the correlation matrices and unit stds in the result (default false). */
  keepCorrelations?: boolean;
  /**
   * Pairs with a silent unit (std < silentStd on the data, in A or in B): re-matched by weight
   * similarity after the correlation assignment ('weights', the default), or left as the
   * correlation solver paired them ('arbitrary', the paper's code). See dead-units.ts.
   */
  deadUnits?: DeadUnitMethod;
  /** Default SILENT_STD (1e-4; dead-units.ts says why). */
  silentStd?: number;
}

export interface AlignResult {
  spec: PermutationSpec;
  /** Per group: B's unit perm[i] becomes unit i. */
  permutations: Permutations;
  /** Per layer, in forward order: mean matched correlation before and after. */
  layers: LayerReport[];
  /** How silent units were matched: the method, threshold, and per group what was re-matched. */
  deadUnits: { method: DeadUnitMethod; silentStd: number; sweeps: number; groups: SilentGroupReport[] };
  /** B's state dict with the permutations applied (new kept tensors: the caller disposes them). */
  state: StateDict;
  images: number;
  /** Wall time of the activation statistics (both networks' forward passes, the correlation
   * matrices read back), of the assignment solves, and of the silent units' weight matching. */
  seconds: { statistics: number; assignment: number; deadUnits: number };
  /** With keepCorrelations: the matrices and stds the matching used. */
  correlations?: LayerCorrelations;
}

/**
 * Aligns `modelB` to `modelA`: correlations on `data`, one exact assignment per group, the pairs
 * with a silent unit re-matched by weight similarity (unless deadUnits is 'arbitrary'), and B's
 * permuted state dict (load it into a model of B's architecture: it computes B's function).
 */
export async function alignModels(modelA: Module, modelB: Module, data: AlignmentData, opts: AlignOptions = {}): Promise<AlignResult> {
  const method = opts.deadUnits ?? 'weights';
  if (!DEAD_UNIT_METHODS.includes(method)) throw new Error(`alignment: deadUnits '${method}' is not one of ${DEAD_UNIT_METHODS.join(', ')}`);
  const silentStd = opts.silentStd ?? SILENT_STD;
  const start = performance.now();
  const correlations = await layerCorrelations(modelA, modelB, data, opts);
  const statistics = (performance.now() - start) / 1000;
  const { spec, matrices, images } = correlations;
  let permutations = matchGroups(spec, matrices, opts.solver);
  const assignment = (performance.now() - start) / 1000 - statistics;
  // The documented step after the paper's assignment (dead-units.ts): silent pairs by weights.
  const silent = silentUnits(correlations, silentStd);
  let dead: AlignResult['deadUnits'];
  if (method === 'weights') {
    const matched = await matchSilentUnits(modelA.stateDict(), modelB.stateDict(), spec, permutations, silent);
    permutations = matched.permutations;
    dead = { method, silentStd, sweeps: matched.sweeps, groups: matched.groups };
  } else {
    const groups = spec.groups.map((g) => {
      const s = silent.get(g.name)!;
      const p = permutations.get(g.name)!;
      const pairs = p.reduce((n, j, i) => n + (s.a[i] || s.b[j] ? 1 : 0), 0);
      const count = (u: Uint8Array) => u.reduce((n, v) => n + v, 0);
      return { group: g.name, silentA: count(s.a), silentB: count(s.b), pairs, changed: 0 };
    });
    dead = { method, silentStd, sweeps: 0, groups };
  }
  const deadUnits = (performance.now() - start) / 1000 - statistics - assignment;
  const layers = layerReports(correlations, permutations, { deadUnits: method, silentStd });
  const state = permuteStateDict(modelB.stateDict(), spec, permutations);
  const result: AlignResult = { spec, permutations, layers, deadUnits: dead, state, images, seconds: { statistics, assignment, deadUnits } };
  if (opts.keepCorrelations) result.correlations = correlations;
  return result;
}
