// PAM's permutation phases in a curve's output folder (Tatro et al. 2020, section 3;
// NeuronAlignment training/train_curve_pam.py with outer_iters = 1, utils/utils.py train_perm and
// sample_permutation). The curve is theta_A -> P theta_B with the bend 1/2 theta_A + 1/2 P theta_B
// + phi (pam-curve.ts); one outer iteration is
//   1. the P-step: every group's P relaxed to a real matrix, starting at the identity (on B as
//      trained for 'pam-unaligned', on B aligned by correlation for 'pam-aligned'), trained for
//      `pamPEpochs` epochs by plain SGD at lr/2 (`pamLr`; the curve's schedule) on the cross-entropy at one
//      t per batch, with phi = 0 and no weight regularizer; after every step the proximal step
//      toward the phase's start and 20 rounds of Birkhoff correction (pam.ts ProximalSGD);
//   2. rounding: per group a Birkhoff-von Neumann decomposition kept to its `pamBvnTerms` largest
//      terms; candidates the assignment projection of P, the previous P (the identity) and
//      `pamCandidates` draws (each group its own term, with probability proportional to its
//      coefficient); the one of lowest training NLL (BN in training mode, batch i of m at
//      t = i / (m - 1)) is kept;
//   3. the phi-step, which is the plain curve training from A to the rounded P(B) with the
//      proximal term on the bend (curve-run.ts).
// With `pamRelax: 'sinkhorn'` (beyond the paper; pam-sinkhorn.ts) step 1 trains logits L with
// P = Sinkhorn(L / tau), tau annealed, by Adam, and the rounding reads Sinkhorn(L / tau_end);
// steps 2 and 3 are the same. That P-step restarts on a resume (its file holds the logits).
// The rounded permutation composed with the initial one is what the curve file records, so
// evaluation and planes read a PAM curve like any other.
//
//   DIR/alignment.json     pam-aligned: the initial correlation alignment (curve-run.ts)
//   DIR/pam-p.safetensors  the relaxed P of every trained group after the last finished P-epoch
//                          (sinkhorn: the logits stacks, `logits.{n}` per group size)
//   DIR/pam.json           the P-step log, every rounding candidate and its loss, the result
//
// Deviations, all for determinism: the candidates are scored on the training set unshuffled and
// unaugmented (the official code uses the shuffled, augmented train loader), and a candidate
// equal to one already scored is not scored again.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, add, keep, noGrad, tidy, zeros } from '../engine/index.js';
import { writeFileAtomic } from '../nn/checkpoint/atomic.js';
import { loadSafetensors, saveSafetensors, toGpuTensors } from '../nn/checkpoint/safetensors.js';
import { CIFAR_AUGMENT, DataLoader, type ImageDataset } from '../nn/data/index.js';
import { deriveSeed, hash, unit } from '../nn/data/random.js';
import { batchTotals } from '../nn/evaluate.js';
import { createModel } from '../nn/models/index.js';
import { copyInto, type Module } from '../nn/module.js';
import { RunStoppedError, lossAndLogits, throwIfStopped, trainLoop, type StepProgress } from '../nn/train.js';
import { makeSchedule } from '../nn/train-run.js';
import { curveParameterNames } from './curve.js';
import { permutationsToJson, type CurvePermutation, type Endpoints } from './curve-file.js';
import type { CurveTrainingOptions } from './curve-run.js';
import { BIRKHOFF_ITERATIONS, ProximalSGD, birkhoffCorrection, birkhoffVonNeumann, drawTerm, largestTerms, permutationDistance, permutationTensor, projectToPermutation } from './pam.js';
import { pamWeightsAt, type PamCurveParts } from './pam-curve.js';
import { SINKHORN_DEFAULTS, runSinkhornPStep } from './pam-sinkhorn.js';
import { composePermutations, identityPermutation, type Permutations } from './permute.js';
import { permutationSpec } from './specs.js';

export const PAM_METHODS = ['pam-unaligned', 'pam-aligned'] as const;
export type PamMethod = (typeof PAM_METHODS)[number];
export const isPamMethod = (m: string): m is PamMethod => (PAM_METHODS as readonly string[]).includes(m);

/** PAM's settings in the paper and the official code (train_curve_pam.py, utils.py sample_permutation). */
export const PAM_DEFAULTS = { pamPEpochs: 20, pamNu: 1000, pamCandidates: 32, pamBvnTerms: 11 } as const;

export const PAM_P_FILE = 'pam-p.safetensors';
export const PAM_RECORD_FILE = 'pam.json';

/**
 * Groups whose permutation PAM keeps fixed: a ResNet's stem (NeuronAlignment
 * create_permutation_matrices: requires_grad=False for the stem's matrix), which in our spec is the
 * stage-1 residual stream it feeds. Input channels and classes belong to no group anyway.
 */
export const PAM_FIXED_GROUPS: Readonly<Record<string, readonly string[]>> = { resnet32: ['layers.0'] };

/** One P-step epoch. */
export interface PamEpochLog {
  epoch: number;
  train_loss: number;
  train_acc: number;
  lr: number;
  seconds: number;
  /** Per group: mean over rows of 1 - max_j P_ij (0 for a permutation). */
  distance: Record<string, number>;
  /** --pam-relax sinkhorn: the temperature of the epoch's last step, and max |row or column sum - 1| of P there. */
  tau?: number;
  sinkhornError?: number;
}

export interface PamCandidate {
  source: 'projection' | 'previous' | 'sample';
  /** Training NLL and accuracy with t swept across the batches (BN in training mode). */
  loss: number;
  accuracy: number;
  /** Index of the earlier candidate it equals (not scored again), or null. */
  sameAs: number | null;
}

export interface PamRecord {
  method: PamMethod;
  endpoints: { a: string; b: string };
  /** The permutation B had before PAM (the correlation alignment), or null. */
  initial: CurvePermutation | null;
  /** The P-step options used (to refuse a resume with others). */
  recipe: Record<string, unknown>;
  /** The run's training options (data folder left out), for a resume before the curve file exists. */
  training: Record<string, unknown>;
  fixedGroups: string[];
  pStep: PamEpochLog[];
  candidates: PamCandidate[];
  chosen: number;
  /** Per group: units the rounded P moved away from the starting permutation. */
  moved: Record<string, number>;
  /** The rounded P composed with the initial permutation: what the curve connects A to. */
  permutation: CurvePermutation;
  seconds: { pStep: number; rounding: number };
  /** --pam-relax sinkhorn: the soft P the rounding read, Sinkhorn(L / tau_end) solved to 1e-4 (its rounds and sum error). */
  sinkhorn?: { iterations: number; error: number };
}

export interface PamHooks {
  onPhase?: (phase: 'P-step' | 'rounding', info: { startEpoch: number; epochs: number; groups: string[]; relax: 'projected' | 'sinkhorn' }) => void;
  onProgress?: (p: StepProgress) => void;
  onPEpochEnd?: (log: PamEpochLog) => void;
  onCandidate?: (i: number, total: number, c: PamCandidate) => void;
  onDone?: (record: PamRecord, reused: boolean) => void;
}

/** What of the options the P-step and rounding depend on. */
function pamRecipe(o: CurveTrainingOptions): Record<string, unknown> {
  return {
    curve: o.curve, points: o.points, pamPEpochs: o.pamPEpochs, pamNu: o.pamNu, pamCandidates: o.pamCandidates, pamBvnTerms: o.pamBvnTerms, pamLr: o.pamLr ?? null,
    lr: o.lr, schedule: o.schedule, batchSize: o.batchSize, seed: o.seed, augment: o.augment, trainSubset: o.trainSubset ?? null, alignSamples: o.alignSamples,
    // Only a Sinkhorn run names its relaxation, so records of projected runs stay as they were.
    ...(o.pamRelax === 'sinkhorn' ? { pamRelax: o.pamRelax, pamTauStart: o.pamTauStart ?? SINKHORN_DEFAULTS.pamTauStart, pamTauEnd: o.pamTauEnd ?? SINKHORN_DEFAULTS.pamTauEnd } : {}),
  };
}

/** Counter streams of the P-step's t draws and of the rounding draws. */
const P_T_STREAM = 0x70616d74; // 'pamt'
const DRAW_STREAM = 0x70616d64; // 'pamd'

/** The saved P-step record of `out`, or null (for --resume before the curve file exists). */
export function readPamRecord(out: string): PamRecord | null {
  const path = join(out, PAM_RECORD_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as PamRecord) : null;
}

/** The training options a PAM run in `out` saved before its curve file existed, or null. */
export async function savedPamOptions(out: string): Promise<CurveTrainingOptions | null> {
  const record = readPamRecord(out);
  if (record) return record.training as unknown as CurveTrainingOptions;
  const path = join(out, PAM_P_FILE);
  if (!existsSync(path)) return null;
  const file = await loadSafetensors(path);
  return file.metadata.training ? (JSON.parse(file.metadata.training) as CurveTrainingOptions) : null;
}

/**
 * Runs (or resumes, or reuses) the P-step and the rounding for endpoints `pair`, whose B is
 * already permuted by `initial`; returns the record with the final permutation.
 */
export async function runPamPermutation(args: {
  method: PamMethod;
  pair: Endpoints;
  initial: CurvePermutation | null;
  train: ImageDataset;
  options: CurveTrainingOptions;
  out: string;
  readEvery?: number;
  hooks?: PamHooks;
  /** Aborted to stop at the next safe point (a step of the P-step, a rounding candidate). */
  stop?: AbortSignal;
}): Promise<PamRecord> {
  const { method, pair, initial, train, out } = args;
  const options = { ...args.options, ...Object.fromEntries(Object.entries(PAM_DEFAULTS).map(([k, v]) => [k, args.options[k as keyof typeof PAM_DEFAULTS] ?? v])) } as CurveTrainingOptions & typeof PAM_DEFAULTS;
  const hooks = args.hooks ?? {};
  const endpoints = { a: pair.a.sha256, b: pair.b.sha256 };
  const recipe = pamRecipe(options);
  const same = (r: { method: string; endpoints: { a: string; b: string }; recipe: Record<string, unknown> }) =>
    r.method === method && r.endpoints.a === endpoints.a && r.endpoints.b === endpoints.b && JSON.stringify(r.recipe) === JSON.stringify(recipe);
  const saved = readPamRecord(out);
  if (saved && same(saved)) {
    hooks.onDone?.(saved, true);
    return saved;
  }

  const model = createModel(pair.a.meta.model, pair.a.meta.config);
  model.loadStateDict(pair.a.model.stateDict());
  const spec = permutationSpec(model);
  const fixed = PAM_FIXED_GROUPS[pair.a.meta.model] ?? [];
  const groups = spec.groups.filter((g) => !fixed.includes(g.name));
  const perms = new Map<string, Tensor>(groups.map((g) => [g.name, permutationTensor(identityPermutation(g.size))]));
  const anchors = groups.map((g) => permutationTensor(identityPermutation(g.size)));
  let optimizer: ProximalSGD | null = null;
  try {
    for (const p of perms.values()) p.requiresGrad = true;
    const parts: PamCurveParts = { kind: options.curve, points: options.points, names: curveParameterNames(model), stateA: pair.a.model.stateDict(), stateB: pair.stateB, spec, phi: null };

    const pPath = join(out, PAM_P_FILE);
    const pLog: PamEpochLog[] = [];
    const pLr = options.pamLr ?? options.lr * 0.5;
    // t of step i of epoch e: uniform in [0, 1), a pure function of (seed, e, i) as curveT.
    const tSeed = deriveSeed(options.seed, P_T_STREAM);
    const tAt = (epoch: number, step: number) => unit(hash(deriveSeed(tSeed, epoch), step));
    const { dataDir: _dp, ...trainingMeta } = options;
    const pMeta = (epoch: number) => ({
      format: 'pt', method, endpoints: JSON.stringify(endpoints), recipe: JSON.stringify(recipe), epoch: String(epoch), log: JSON.stringify(pLog), training: JSON.stringify(trainingMeta),
    });
    let relaxed = new Map<string, Float32Array>();
    let pSeconds = 0;
    let sinkhorn: PamRecord['sinkhorn'];
    if (options.pamRelax === 'sinkhorn') {
      // 1'. The P-step with P = Sinkhorn(L / tau) (pam-sinkhorn.ts).
      hooks.onPhase?.('P-step', { startEpoch: 0, epochs: options.pamPEpochs, groups: groups.map((g) => g.name), relax: 'sinkhorn' });
      const r = await runSinkhornPStep({
        model, parts, groups, train, options, lr: pLr, tAt, readEvery: args.readEvery, stop: args.stop, hooks, log: pLog,
        save: (logits, epoch) => saveSafetensors(pPath, logits, pMeta(epoch)),
      });
      ({ relaxed, seconds: pSeconds } = r);
      sinkhorn = { iterations: r.iterations, error: r.error };
    } else {
      // 1. The P-step, resumable per epoch: plain SGD has no state besides P itself.
      let startEpoch = 0;
      if (existsSync(pPath)) {
        const file = await loadSafetensors(pPath);
        const m = file.metadata;
        if (m.method === method && m.endpoints === JSON.stringify(endpoints) && m.recipe === JSON.stringify(recipe)) {
          const gpu = toGpuTensors(file.tensors, pPath);
          noGrad(() => {
            for (const [g, p] of perms) {
              const src = gpu.get(g);
              if (!src || src.size !== p.size) throw new Error(`${pPath}: no matrix for group '${g}' of the right size`);
              copyInto(p, src);
            }
          });
          for (const t of gpu.values()) t.dispose();
          startEpoch = Number(m.epoch);
          pLog.push(...(JSON.parse(m.log ?? '[]') as PamEpochLog[]));
        }
      }
      optimizer = new ProximalSGD([...perms.values()], { lr: pLr }, anchors, options.pamNu, (p) => birkhoffCorrection(p, BIRKHOFF_ITERATIONS));
      const loader = new DataLoader(train, { batchSize: options.batchSize, shuffle: true, augment: options.augment ? CIFAR_AUGMENT : null, seed: options.seed });
      hooks.onPhase?.('P-step', { startEpoch, epochs: options.pamPEpochs, groups: groups.map((g) => g.name), relax: 'projected' });
      const pStarted = performance.now();
      const previousSeconds = pLog.reduce((s, l) => s + l.seconds, 0);
      const pStep = trainLoop({
        model,
        optimizer,
        schedule: makeSchedule(options.schedule, pLr, options.pamPEpochs),
        train: loader,
        epochs: options.pamPEpochs,
        startEpoch,
        readEvery: args.readEvery,
        stop: args.stop,
        objective: ({ x, y }, epoch, step) => model.withParameters(pamWeightsAt(parts, perms, tAt(epoch, step)), () => lossAndLogits(model, x, y)),
        watch: () => perms,
        onProgress: hooks.onProgress,
        onEpochEnd: async (log) => {
          const distance: Record<string, number> = {};
          for (const [g, p] of perms) distance[g] = permutationDistance(await p.toArray(), p.shape[0]!);
          const entry: PamEpochLog = { epoch: log.epoch, train_loss: log.train_loss, train_acc: log.train_acc, lr: log.lr, seconds: log.seconds, distance };
          pLog.push(entry);
          await saveSafetensors(pPath, perms, pMeta(log.epoch));
          hooks.onPEpochEnd?.(entry);
        },
      });
      await pStep.catch((e) => {
        throw e instanceof RunStoppedError ? new RunStoppedError(e.signal, `the PAM P-step's ${e.where}`, e.epoch) : e;
      });
      pSeconds = previousSeconds + (performance.now() - pStarted) / 1000;
      for (const [g, p] of perms) relaxed.set(g, (await p.toArray()) as Float32Array);
    }

    // 2. Rounding.
    hooks.onPhase?.('rounding', { startEpoch: 0, epochs: 0, groups: groups.map((g) => g.name), relax: options.pamRelax ?? 'projected' });
    const roundStarted = performance.now();
    const candidates: Permutations[] = [];
    const sources: PamCandidate['source'][] = [];
    candidates.push(new Map(groups.map((g) => [g.name, projectToPermutation(relaxed.get(g.name)!, g.size)])));
    sources.push('projection');
    candidates.push(new Map(groups.map((g) => [g.name, identityPermutation(g.size)])));
    sources.push('previous');
    const decompositions = groups.map((g) => largestTerms(birkhoffVonNeumann(relaxed.get(g.name)!, g.size, { keep: options.pamBvnTerms }), options.pamBvnTerms));
    const drawSeed = deriveSeed(options.seed, DRAW_STREAM);
    for (let k = 0; k < options.pamCandidates; k++) {
      candidates.push(
        new Map(
          groups.map((g, gi) => {
            const { terms, cdf } = decompositions[gi]!;
            // A group whose decomposition came out empty (P far from doubly stochastic) keeps the projection.
            return [g.name, terms.length ? terms[drawTerm(cdf, unit(hash(drawSeed, k * groups.length + gi)))]!.perm : candidates[0]!.get(g.name)!];
          }),
        ),
      );
      sources.push('sample');
    }
    const scoring = new DataLoader(train, { batchSize: options.batchSize });
    const scored: PamCandidate[] = [];
    const keys = candidates.map((c) => groups.map((g) => c.get(g.name)!.join(',')).join(';'));
    let chosen = 0;
    for (let i = 0; i < candidates.length; i++) {
      // Rounding keeps nothing on disk until pam.json: a stop here redoes it on resume.
      throwIfStopped(args.stop, () => `PAM rounding, candidate ${i + 1} of ${candidates.length}`, 1);
      const first = keys.indexOf(keys[i]!);
      const result = first < i ? { loss: scored[first]!.loss, accuracy: scored[first]!.accuracy } : await candidateLoss(model, parts, candidates[i]!, scoring);
      const c: PamCandidate = { source: sources[i]!, ...result, sameAs: first < i ? first : null };
      scored.push(c);
      // The official order: the projection, then the previous P on a tie or better, then a draw only when strictly better.
      if (i > 0 && (i === 1 ? c.loss <= scored[chosen]!.loss : c.loss < scored[chosen]!.loss)) chosen = i;
      hooks.onCandidate?.(i, candidates.length, c);
    }

    const rounded = candidates[chosen]!;
    const start = initial ? new Map(Object.entries(initial.groups).map(([g, v]) => [g, Int32Array.from(v)])) : new Map<string, Int32Array>();
    const final: Permutations = new Map();
    const moved: Record<string, number> = {};
    for (const g of spec.groups) {
      const first = start.get(g.name) ?? identityPermutation(g.size);
      const second = rounded.get(g.name) ?? identityPermutation(g.size);
      final.set(g.name, composePermutations(first, second));
      moved[g.name] = second.reduce((n, v, i) => n + (v !== i ? 1 : 0), 0);
    }
    const { dataDir: _dd, ...training } = options;
    const record: PamRecord = {
      method, endpoints, initial, recipe, training, fixedGroups: [...fixed], pStep: pLog, candidates: scored, chosen, moved,
      permutation: permutationsToJson(method, final)!,
      seconds: { pStep: pSeconds, rounding: (performance.now() - roundStarted) / 1000 },
      ...(sinkhorn ? { sinkhorn } : {}),
    };
    await writeFileAtomic(join(out, PAM_RECORD_FILE), [new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`)]);
    hooks.onDone?.(record, false);
    return record;
  } finally {
    optimizer?.dispose();
    for (const p of [...perms.values(), ...anchors]) {
      p.grad?.dispose();
      p.dispose();
    }
    model.dispose();
  }
}

/**
 * Training NLL and accuracy of the PAM network with `perms` (permutations, as 0/1 matrices) in
 * training mode (BN batch statistics), batch i of m at t = i / (m - 1). Sums stay on the GPU.
 */
async function candidateLoss(model: Module, parts: PamCurveParts, perms: Permutations, data: DataLoader): Promise<{ loss: number; accuracy: number }> {
  const matrices = new Map([...perms].map(([g, p]) => [g, permutationTensor(p)]));
  let totals = keep(zeros([2]));
  let images = 0;
  try {
    model.train();
    const m = data.length;
    for (let i = 0; i < m; i++) {
      const next = tidy(() =>
        noGrad(() => {
          const { x, y } = data.batch(0, i);
          images += y.size;
          const t = m === 1 ? 0 : i / (m - 1);
          return add(totals, model.withParameters(pamWeightsAt(parts, matrices, t), () => batchTotals(model.forward(x), y)));
        }),
      );
      totals.dispose();
      totals = keep(next);
    }
    const [lossSum, correct] = await totals.toArray();
    return { loss: lossSum! / images, accuracy: correct! / images };
  } finally {
    totals.dispose();
    for (const p of matrices.values()) p.dispose();
  }
}
