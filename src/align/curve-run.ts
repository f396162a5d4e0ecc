// Training a curve in an output folder (Tatro et al. 2020, section 2; NeuronAlignment
// train_curve.py): the endpoints fixed, the bends trained on
//   E_{t ~ U[0,1]} [ CE(w(t)) ] + 1/2 wd ||w(t)||^2,
// one t per mini-batch, the L2 term over the weights at the sampled point (BN weights and biases
// included) and the optimizer's own weight decay 0; Nesterov SGD, momentum 0.9, the endpoints'
// augmentation, and the paper's schedule (Garipov's as an option).
//
//   DIR/alignment.json                 with --align: the permutation of B and its report
//   DIR/curve.safetensors              the bends after the last finished epoch (curve-file.ts)
//   DIR/optimizer-epoch{E}.safetensors momentum buffers of the same epoch
//   DIR/log.jsonl                      one EpochLog per line (train loss = cross-entropy alone)
//   DIR/pam-p.safetensors, DIR/pam.json with --align pam-*: PAM's P-step and rounding (pam-run.ts)
//
// With --align pam-unaligned or pam-aligned (Tatro et al. section 3), the permutation is found by
// PAM's P-step and rounding first (pam-run.ts), and the curve is then trained as here (the
// phi-step) from A to the rounded P(B), with PAM's proximal step on the bend after every step.
//
// Everything random is a function of the seed: the loader's order and augmentation, the t of each
// step (curveT), the random bend initialization; so --resume continues bit for bit.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, Tensor, clone, keep, noGrad, withL2Gradient } from '../engine/index.js';
import { writeFileAtomic } from '../nn/checkpoint/atomic.js';
import { generatorStates, restoreGenerators } from '../nn/checkpoint/model.js';
import { CIFAR_AUGMENT, DataLoader, firstImages, loadDataset, type Batch, type ImageDataset } from '../nn/data/index.js';
import { deriveSeed, hash, unit } from '../nn/data/random.js';
import { createModel } from '../nn/models/index.js';
import type { Module } from '../nn/module.js';
import { SGD } from '../nn/optim.js';
import { PGD_DEFAULTS, inputSpace, pgd, pgdGenerator, type InputSpace, type PgdOptions } from '../nn/pgd.js';
import { RunFolder } from '../nn/run-folder.js';
import { describeTuning, tuneKernels } from '../nn/tune-kernels.js';
import { lossAndLogits, trainLoop, type EpochLog, type Objective, type StepProgress } from '../nn/train.js';
import { makeSchedule, resumeOptions, type ScheduleName } from '../nn/train-run.js';
import { alignModels, type LayerReport } from './align.js';
import { Curve, CURVE_KINDS, type CurveKind } from './curve.js';
import {
  CURVE_FILE, checkBendsFinite, disposeEndpoints, endpointPath, loadBendsFrom, loadEndpoints, permutationsFromJson, permutationsToJson, readCurveFile, saveCurve,
  type CurveMetadata, type CurvePermutation, type Endpoints,
} from './curve-file.js';
import { ProximalSGD } from './pam.js';
import { SINKHORN_DEFAULTS } from './pam-sinkhorn.js';
import { PAM_DEFAULTS, PAM_METHODS, isPamMethod, runPamPermutation, savedPamOptions, type PamHooks, type PamMethod } from './pam-run.js';
import { permutationSpec } from './specs.js';
import { weightMatching } from './weight-matching.js';

export const CURVE_ALIGN_METHODS = ['none', 'correlation', 'weights', ...PAM_METHODS] as const;
export type CurveAlignMethod = (typeof CURVE_ALIGN_METHODS)[number];

/** Everything that determines a curve's bends (stored in the curve file's metadata). */
export interface CurveTrainingOptions {
  curve: CurveKind;
  /** Control points, endpoints included (3: one bend). */
  points: number;
  init: 'linear' | 'random';
  align: CurveAlignMethod;
  /** Alignment images (the first N training images, test transform), as `neuralign align`. */
  alignSamples: number;
  epochs: number;
  batchSize: number;
  lr: number;
  /** wd of the L2 term 1/2 wd ||w(t)||^2. */
  weightDecay: number;
  momentum: number;
  nesterov: boolean;
  schedule: ScheduleName;
  /** Seed of the data order, augmentation, the t draws and a random initialization. */
  seed: number;
  augment: boolean;
  trainSubset?: number;
  /** PAM (--align pam-*; PAM_DEFAULTS): P-step epochs, the proximal nu, random rounding candidates, BvN terms kept. */
  pamPEpochs?: number;
  pamNu?: number;
  pamCandidates?: number;
  pamBvnTerms?: number;
  /** PAM: the P-step's initial learning rate (default lr / 2, the official code's). */
  pamLr?: number;
  /**
   * PAM's relaxation of P (pam-sinkhorn.ts): absent for the paper's projected gradient, 'sinkhorn'
   * for P = Sinkhorn(L / tau) with tau annealed from pamTauStart to pamTauEnd (SINKHORN_DEFAULTS).
   */
  pamRelax?: 'sinkhorn';
  pamTauStart?: number;
  pamTauEnd?: number;
  /**
   * Tatro et al. section 4 (`curve --adversarial`): each batch's PGD examples against the curve's
   * network at that batch's t replace the batch; eps and step in pixel units (nn/pgd.ts). Absent
   * for a standard curve.
   */
  adversarial?: boolean;
  pgdEps?: number;
  pgdStep?: number;
  pgdSteps?: number;
  /** Data folder (not part of the recipe). */
  dataDir?: string;
}

/** The paper's curve recipe (section 2), for endpoints trained with `endpoint` (their options). */
export function curveDefaults(endpoint: { batchSize?: unknown; augment?: unknown; dataset?: unknown }): CurveTrainingOptions {
  return {
    curve: 'bezier',
    points: 3,
    init: 'linear',
    align: 'none',
    alignSamples: 10000,
    epochs: 250,
    batchSize: typeof endpoint.batchSize === 'number' ? endpoint.batchSize : 128,
    lr: 0.1,
    weightDecay: 5e-4,
    momentum: 0.9,
    nesterov: true,
    schedule: 'tatro',
    seed: 1,
    augment: typeof endpoint.augment === 'boolean' ? endpoint.augment : String(endpoint.dataset).startsWith('cifar'),
  };
}

/** Counter stream of the t draws (any constant distinct from the loader's streams). */
const T_STREAM = 0x63757276; // 'curv'

/** The t of step `step` (0-based) of epoch `epoch` (0-based): uniform in [0, 1), a pure function. */
export function curveT(seed: number, epoch: number, step: number): number {
  return unit(hash(deriveSeed(deriveSeed(seed, T_STREAM), epoch), step));
}

/**
 * What `curve --adversarial` changes in the curve recipe (NeuronAlignment
 * train_curve_adversarial.py): 200 epochs and Garipov's schedule as the robust endpoints, and the
 * attack the endpoints were trained against (their PGD recipe; else 8/255, 2/255, 5 steps).
 */
export function adversarialCurveDefaults(endpoint: Record<string, unknown>): Partial<CurveTrainingOptions> {
  const own = (key: string, fallback: number) => (typeof endpoint[key] === 'number' ? (endpoint[key] as number) : fallback);
  return { adversarial: true, epochs: 200, schedule: 'garipov', pgdEps: own('pgdEps', PGD_DEFAULTS.eps), pgdStep: own('pgdStep', PGD_DEFAULTS.step), pgdSteps: own('pgdSteps', PGD_DEFAULTS.steps) };
}

/** The attack of an adversarial curve: how its loader normalizes, and the PGD recipe. */
export interface CurveAttack {
  space: InputSpace;
  recipe: Partial<PgdOptions>;
}

/**
 * The curve objective for one batch at t: the network at w(t) (Module.withParameters, so the
 * gradient flows through the coefficient sum to the bends), cross-entropy (GoogLeNet's auxiliary
 * heads included, as in endpoint training) plus 1/2 wd ||w(t)||^2. The reported loss is the
 * cross-entropy. With `attack` (section 4), the batch is first replaced by its PGD examples
 * against the network at the same t in training mode (BN on batch statistics, as the official
 * train_curve_adversarial.py): the attack runs on w(t) computed without gradient, so it reaches no
 * bend, and its random starts are a function of (seed, epoch, step).
 */
export function curveObjective(model: Module, curve: Curve, weightDecay: number, seed: number, attack?: CurveAttack): Objective {
  return (batch, epoch, step) => {
    const t = curveT(seed, epoch, step);
    const { y } = batch;
    const x = attack ? attackAt(model, curve, t, batch, attack, pgdGenerator(seed, epoch, step)) : batch.x;
    const w = curve.weightsAt(t);
    // The penalty enters through its gradient, wd w(t), added where w(t) meets the network: the
    // bends get c_k(t) (dCE/dw + wd w), the gradient of the whole objective. Its value is not
    // needed for training (the logged loss is the cross-entropy).
    const penalized = weightDecay > 0 ? new Map([...w].map(([name, t]) => [name, withL2Gradient(t, weightDecay)])) : w;
    return model.withParameters(penalized, () => lossAndLogits(model, x, y));
  };
}

/** PGD examples of `batch` against the curve's network at t (weights without gradient). */
export function attackAt(model: Module, curve: Curve, t: number, { x, y }: Batch, attack: CurveAttack, generator?: Generator): Tensor {
  const fixed = noGrad(() => curve.weightsAt(t));
  return pgd(model, x, y, attack.space, { ...attack.recipe, generator, forward: (v) => model.withParameters(fixed, () => model.forward(v)) });
}

export interface AlignmentRecord {
  method: 'correlation' | 'weights';
  /** How units silent on the alignment data were matched (align.ts; absent in older records). */
  deadUnits?: 'weights' | 'arbitrary';
  endpoints: { a: string; b: string };
  images: number;
  permutation: CurvePermutation;
  layers: LayerReport[] | null;
  seconds: number;
}

export interface CurveRunHooks {
  /** What opening the folder did on its own (a stale lock taken over, a log without curve cleared). */
  onMessage?: (line: string) => void;
  onStart?: (info: { parameters: number; trainImages: number; startEpoch: number; options: CurveTrainingOptions; permuted: boolean }) => void;
  onAlign?: (record: AlignmentRecord, reused: boolean) => void;
  /** PAM's phases (P-step, rounding) before the curve's own training, the phi-step. */
  pam?: PamHooks;
  onProgress?: (p: StepProgress) => void;
  onEpochEnd?: (log: EpochLog) => void;
}

export interface CurveRunResult {
  logs: EpochLog[];
  epoch: number;
  curveFile: string;
}

/**
 * The permutation of B for `method`, computed once and saved in DIR/alignment.json; a rerun or a
 * resume with the same endpoint files reuses it.
 */
async function alignmentFor(method: 'none' | 'correlation' | 'weights', pair: Endpoints, train: ImageDataset, options: CurveTrainingOptions, out: string, hooks: CurveRunHooks): Promise<AlignmentRecord | null> {
  if (method === 'none') return null;
  const path = join(out, 'alignment.json');
  if (existsSync(path)) {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as AlignmentRecord;
    // A record from before silent units were matched by weights (no deadUnits) is not reused.
    if (saved.method === method && (method !== 'correlation' || saved.deadUnits === 'weights') && saved.endpoints.a === pair.a.sha256 && saved.endpoints.b === pair.b.sha256) {
      hooks.onAlign?.(saved, true);
      return saved;
    }
  }
  const start = performance.now();
  let record: AlignmentRecord;
  if (method === 'correlation') {
    const data = new DataLoader(firstImages(train, Math.min(options.alignSamples, train.shape[0]), 'align-samples'), { batchSize: 512 });
    const result = await alignModels(pair.a.model, pair.b.model, data, { deadUnits: 'weights' });
    for (const t of result.state.values()) t.dispose();
    record = { method, deadUnits: 'weights', endpoints: { a: pair.a.sha256, b: pair.b.sha256 }, images: result.images, permutation: permutationsToJson(method, result.permutations)!, layers: result.layers, seconds: 0 };
  } else {
    const result = await weightMatching(pair.a.model.stateDict(), pair.b.model.stateDict(), permutationSpec(pair.a.model));
    for (const t of result.state.values()) t.dispose();
    record = { method, endpoints: { a: pair.a.sha256, b: pair.b.sha256 }, images: 0, permutation: permutationsToJson(method, result.permutations)!, layers: null, seconds: 0 };
  }
  record.seconds = (performance.now() - start) / 1000;
  await writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(record, null, 1)}\n`)]);
  hooks.onAlign?.(record, false);
  return record;
}

/**
 * Trains a curve between checkpoints `a` and `b` into folder `out` (see the file comment). With
 * `resume`, continues from out's curve file (same endpoints, same recipe; --epochs may grow when
 * the schedule allows); without, `out` must not hold a curve yet.
 */
export async function runCurveTraining(
  a: string,
  b: string,
  given: Partial<CurveTrainingOptions>,
  out: string,
  opts: { resume?: boolean; readEvery?: number; hooks?: CurveRunHooks; stop?: AbortSignal } = {},
): Promise<CurveRunResult> {
  // The folder first (run-folder.ts): an unwritable --out or a second writer fails before any work.
  const folder = await RunFolder.open(out, { main: CURVE_FILE, what: 'a curve', resume: !!opts.resume, onMessage: opts.hooks?.onMessage });
  try {
    return await trainCurveIn(folder, a, b, given, opts);
  } finally {
    folder.close();
  }
}

async function trainCurveIn(folder: RunFolder, a: string, b: string, given: Partial<CurveTrainingOptions>, opts: Parameters<typeof runCurveTraining>[4] & {}): Promise<CurveRunResult> {
  const hooks = opts.hooks ?? {};
  const out = folder.dir;
  const curvePath = folder.mainPath;
  let saved: Awaited<ReturnType<typeof readCurveFile>> | null = null;
  // A PAM run killed before its curve file existed resumes from its P-step files.
  const pamSaved = existsSync(curvePath) ? null : await savedPamOptions(out);
  if (opts.resume) {
    if (existsSync(curvePath)) saved = await readCurveFile(curvePath);
    else if (!pamSaved) throw new Error(`${out}: no ${CURVE_FILE} to resume from`);
  } else if (pamSaved) {
    throw new Error(`${out} already holds a PAM run; pass --resume to continue it, or choose another --out`);
  }
  // The permutation is part of the curve: on resume it comes from the curve file.
  let pair = await loadEndpoints(a, b, null, saved ? { a: saved.meta.endpoints.a.sha256, b: saved.meta.endpoints.b.sha256 } : undefined);
  let curve: Curve | null = null;
  let model: Module | null = null;
  let optimizer: SGD | null = null;
  let anchors: Tensor[] | null = null;
  try {
    const defaults = curveDefaults(pair.a.meta.training);
    const newOptions = (): CurveTrainingOptions => {
      const o = { ...defaults, ...(given.adversarial ? adversarialCurveDefaults(pair.a.meta.training) : {}), ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as CurveTrainingOptions;
      return isPamMethod(o.align) ? { ...PAM_DEFAULTS, ...(o.pamRelax === 'sinkhorn' ? SINKHORN_DEFAULTS : {}), ...o } : o;
    };
    const options: CurveTrainingOptions = saved
      ? resumeOptions(saved.meta.training as unknown as CurveTrainingOptions, given)
      : pamSaved && opts.resume
        ? resumeOptions(pamSaved, given)
        : newOptions();
    if (!CURVE_KINDS.includes(options.curve)) throw new Error(`unknown curve kind '${options.curve}'`);
    const pam = isPamMethod(options.align);
    if (pam && options.init !== 'linear') throw new Error(`PAM starts its bend at 1/2 theta_A + 1/2 P theta_B (phi = 0): --init-bends ${options.init} does not apply`);
    const dataDir = options.dataDir ?? (pair.a.meta.training as { dataDir?: string }).dataDir;
    const train = firstImages(loadDataset(pair.a.meta.dataset, 'train', dataDir), options.trainSubset, 'train-subset');
    if (train.shape[1] !== pair.a.meta.config.inChannels || train.classes !== pair.a.meta.config.numClasses) {
      throw new Error(`${train.name} does not fit the endpoints' ${pair.a.meta.model} (${pair.a.meta.config.inChannels} channels, ${pair.a.meta.config.numClasses} classes)`);
    }
    // Kernels for the endpoints' layer shapes, which PAM's P-step and the curve's w(t) share.
    const images = train.shape[0] * (options.epochs + (pam ? (options.pamPEpochs ?? 0) : 0));
    hooks.onMessage?.(describeTuning(await tuneKernels(pair.a.model, [options.batchSize, ...train.shape.slice(1)], { images })));
    let permutation: CurvePermutation | null;
    if (saved) permutation = saved.meta.permutation;
    else if (pam) {
      // PAM: P starts at the identity on B as trained, or on B aligned by correlation.
      const initial = options.align === 'pam-aligned' ? ((await alignmentFor('correlation', pair, train, options, out, hooks))?.permutation ?? null) : null;
      const start = initial ? await loadEndpoints(a, b, permutationsFromJson(initial)) : pair;
      try {
        const record = await runPamPermutation({ method: options.align as PamMethod, pair: start, initial, train, options, out, readEvery: opts.readEvery, hooks: hooks.pam, stop: opts.stop });
        permutation = record.permutation;
      } finally {
        if (start !== pair) disposeEndpoints(start);
      }
    } else permutation = (await alignmentFor(options.align as 'none' | 'correlation' | 'weights', pair, train, options, out, hooks))?.permutation ?? null;
    if (permutation) {
      const unpermuted = pair;
      pair = await loadEndpoints(a, b, permutationsFromJson(permutation));
      disposeEndpoints(unpermuted);
    }

    model = createModel(pair.a.meta.model, pair.a.meta.config);
    model.loadStateDict(pair.a.model.stateDict());
    const config = pair.a.meta.config;
    // Garipov's random bends: a freshly initialized network per bend, seeded by the run's seed.
    const fresh = options.init === 'random' ? Array.from({ length: options.points - 2 }, (_, i) => createModel(pair.a.meta.model, { ...config, seed: deriveSeed(options.seed, i + 1) })) : [];
    try {
      curve = new Curve(model, pair.a.model.stateDict(), pair.stateB, { kind: options.curve, points: options.points, init: fresh.length ? fresh.map((f) => f.stateDict()) : 'linear' });
    } finally {
      for (const f of fresh) f.dispose();
    }
    const sgd = { lr: options.lr, momentum: options.momentum, nesterov: options.nesterov, weightDecay: 0 };
    // PAM's phi-step: the proximal step toward phi's start after every step, which is the bend's
    // start 1/2 theta_A + 1/2 P theta_B (pam.ts ProximalSGD); taken before a resume loads the bends.
    if (pam) anchors = noGrad(() => curve!.parameters().map((p) => keep(clone(p))));
    optimizer = anchors ? new ProximalSGD(curve.parameters(), sgd, anchors, options.pamNu ?? PAM_DEFAULTS.pamNu) : new SGD(curve.parameters(), sgd);
    let startEpoch = 0;
    if (saved) {
      startEpoch = saved.meta.epoch;
      loadBendsFrom(curve, saved, curvePath);
      await checkBendsFinite(curve, curvePath);
      restoreGenerators(model, saved.meta.generators, curvePath);
    }
    // A PAM run resumed before its curve file existed starts the phi-step at epoch 0: a log line
    // or optimizer file of a phi-epoch that was never saved goes.
    if (opts.resume) await folder.resumeFrom(startEpoch, optimizer);
    const loader = new DataLoader(train, { batchSize: options.batchSize, shuffle: true, augment: options.augment ? CIFAR_AUGMENT : null, seed: options.seed });
    hooks.onStart?.({ parameters: curve.parameters().reduce((n, t) => n + t.size, 0), trainImages: train.shape[0], startEpoch, options, permuted: !!permutation });

    const endpoints = {
      a: { path: endpointPath(curvePath, a), sha256: pair.a.sha256, seed: pair.a.meta.seed },
      b: { path: endpointPath(curvePath, b), sha256: pair.b.sha256, seed: pair.b.meta.seed },
    };
    const c = curve;
    const m = model;
    const opt = optimizer;
    let epoch = startEpoch;
    const logs = await trainLoop({
      model: m,
      optimizer: opt,
      schedule: makeSchedule(options.schedule, options.lr, options.epochs),
      train: loader,
      test: null,
      epochs: options.epochs,
      startEpoch,
      readEvery: opts.readEvery,
      stop: opts.stop,
      objective: curveObjective(m, c, options.weightDecay, options.seed, options.adversarial ? { space: inputSpace(loader), recipe: { eps: options.pgdEps, step: options.pgdStep, steps: options.pgdSteps } } : undefined),
      watch: () => c.bendStateDict(),
      onProgress: hooks.onProgress,
      onEpochEnd: async (log) => {
        const { dataDir: _d, ...recipe } = options;
        const meta: CurveMetadata = {
          curve: c.kind,
          points: c.points,
          model: pair.a.meta.model,
          config,
          dataset: pair.a.meta.dataset,
          endpoints,
          permutation,
          epoch: log.epoch,
          training: { ...recipe, ...(options.dataDir ? { dataDir: options.dataDir } : {}) },
          generators: generatorStates(m),
          metrics: { train_loss: log.train_loss, train_acc: log.train_acc, lr: log.lr, seconds: log.seconds },
        };
        // The log line, the companion, then the curve file, then older companions (run-folder.ts).
        await folder.saveEpoch(log, opt, (path) => saveCurve(path, c, meta));
        epoch = log.epoch;
        hooks.onEpochEnd?.(log);
      },
    });
    return { logs, epoch, curveFile: curvePath };
  } finally {
    optimizer?.dispose();
    for (const t of anchors ?? []) t.dispose();
    curve?.dispose();
    model?.dispose();
    disposeEndpoints(pair);
  }
}
