// The reproduction as a graph of stages. Each stage is one `neuralign` command with its flags, its
// input files (artifacts of earlier stages) and its outputs under the run folder, so a stage can
// run in this process (`reproduce`), alone (`reproduce --stage NAME`), or as a job of an external
// scheduler, and the command line a researcher would type is the stage's definition:
//
//   train-s{S}             neuralign train   -> endpoints/seed{S}/checkpoint.safetensors
//   curve-p{i}-{variant}   neuralign curve   -> curves/pair{i}-{variant}/curve.safetensors
//                          (unaligned: A to B; aligned: A to P(B), B aligned by correlation;
//                          pam-*: PAM from the identity or from the alignment)
//   eval-p{i}-{variant}    neuralign eval-curve --line -> eval/pair{i}-{variant}.json
//                          (the curve and the straight line between its endpoints: A-B for the
//                          unaligned curve, A-P(B) for the aligned one, on the same data)
//   plane-p1-{variant}     neuralign plane   -> planes/pair1-{variant}.json (when the preset has one)
//   report                 report.md, results.json, plots/*.svg from every eval and plane JSON
//
// With `robust` (section 4), the same again for adversarially trained networks: train-adv-s{S}
// (train --adversarial), curve-adv-p{i}-{unaligned|aligned} (curve --adversarial, between the
// robust endpoints) and eval-adv-p{i}-{variant} (eval-curve --robust --line: clean and PGD
// accuracy along t, BN re-estimated on PGD examples), which the report's robust table reads.
//
// Pair i uses the endpoint seeds 2i - 1 and 2i, as the paper's (1, 2), (3, 4), (5, 6).
import { join } from 'node:path';
import { CURVE_ALIGN_METHODS } from '../align/curve-run.js';
import { CURVE_VARIANTS, VARIANT_ALIGN, type CurveVariant, type Preset } from './presets.js';

export type StageKind = 'train' | 'curve' | 'eval' | 'plane' | 'report';

export interface Stage {
  name: string;
  kind: StageKind;
  /** The command and its flags (paths relative to nothing: absolute or as given for the run folder). */
  argv: string[];
  /** Files this stage reads (artifacts of earlier stages). */
  inputs: string[];
  /** Files it writes; the stage is done when they exist and its record matches (runner.ts). */
  outputs: string[];
  /** The folder a resumable stage keeps its checkpoints in (train, curve). */
  folder?: string;
  /** Relative cost, in training-image equivalents, for the time estimate. */
  cost: number;
}

export interface StageOptions {
  out: string;
  pairs?: number;
  dataDir?: string;
  /** Also the adversarial endpoints and curves (see the file comment). */
  robust?: boolean;
}

/** The curves compared between robust endpoints (the paper's section 4 compares these two). */
export const ROBUST_VARIANTS = ['unaligned', 'aligned'] as const;

/** A PGD-5 training step: five forward-backward passes for the attack, one for the update. */
const PGD_STEP_COST = 6;

/** The curve variants this preset trains: the preset's list, or every one `neuralign curve` offers. */
export function variantsOf(preset: Preset): CurveVariant[] {
  const offered = CURVE_VARIANTS.filter((v) => (CURVE_ALIGN_METHODS as readonly string[]).includes(VARIANT_ALIGN[v]));
  return (preset.variants ?? offered).filter((v) => offered.includes(v));
}

const flag = (name: string, value: number | string | undefined): string[] => (value === undefined ? [] : [`--${name}`, String(value)]);

export function buildStages(preset: Preset, opts: StageOptions): Stage[] {
  const { out } = opts;
  const pairs = opts.pairs ?? preset.pairs;
  const data = flag('data-dir', opts.dataDir);
  const stages: Stage[] = [];
  const checkpoint = (seed: number) => join(out, 'endpoints', `seed${seed}`, 'checkpoint.safetensors');
  const trainImages = (subset: number | undefined) => subset ?? 50000;

  for (let seed = 1; seed <= 2 * pairs; seed++) {
    const folder = join(out, 'endpoints', `seed${seed}`);
    const t = preset.train;
    stages.push({
      name: `train-s${seed}`,
      kind: 'train',
      argv: ['train', '--model', preset.model, '--dataset', preset.dataset, '--width', String(preset.width), '--epochs', String(t.epochs), '--seed', String(seed),
        ...flag('batch-size', t.batchSize), ...flag('train-subset', t.trainSubset), ...flag('test-subset', t.testSubset), ...data, '--out', folder],
      inputs: [],
      outputs: [checkpoint(seed)],
      folder,
      cost: t.epochs * trainImages(t.trainSubset),
    });
  }
  const variants = variantsOf(preset);
  for (let i = 1; i <= pairs; i++) {
    const [a, b] = [checkpoint(2 * i - 1), checkpoint(2 * i)];
    for (const variant of variants) {
      const folder = join(out, 'curves', `pair${i}-${variant}`);
      const curveFile = join(folder, 'curve.safetensors');
      const c = preset.curve;
      const pam = variant.startsWith('pam') ? 20 : 0; // PAM's P-step epochs (section 3)
      stages.push({
        name: `curve-p${i}-${variant}`,
        kind: 'curve',
        argv: ['curve', '--a', a, '--b', b, '--align', VARIANT_ALIGN[variant], '--epochs', String(c.epochs),
          ...flag('batch-size', c.batchSize), ...flag('train-subset', c.trainSubset), ...flag('align-samples', c.alignSamples), ...data, '--out', folder],
        inputs: [a, b],
        outputs: [curveFile],
        folder,
        cost: (c.epochs + pam) * trainImages(c.trainSubset) * 1.2,
      });
      const e = preset.evaluation;
      const evalFile = join(out, 'eval', `pair${i}-${variant}.json`);
      // Per point and path: one BN pass and one test pass (forward only, about a third of a step).
      const perPoint = (trainImages(e.trainSubset) + (e.testSubset ?? 10000)) / 3;
      stages.push({
        name: `eval-p${i}-${variant}`,
        kind: 'eval',
        argv: ['eval-curve', '--curve', curveFile, '--line', '--points', String(e.points), ...flag('train-subset', e.trainSubset), ...flag('test-subset', e.testSubset), ...data, '--json', evalFile],
        inputs: [curveFile, a, b],
        outputs: [evalFile],
        cost: 2 * e.points * perPoint,
      });
      if (preset.plane && i === 1 && (variant === 'aligned' || variant === 'unaligned')) {
        const p = preset.plane;
        const planeFile = join(out, 'planes', `pair${i}-${variant}.json`);
        stages.push({
          name: `plane-p${i}-${variant}`,
          kind: 'plane',
          argv: ['plane', '--curve', curveFile, '--grid', String(p.grid), ...flag('train-subset', p.trainSubset), ...flag('test-subset', p.testSubset), ...data, '--json', planeFile],
          inputs: [curveFile, a, b],
          outputs: [planeFile],
          cost: (p.grid * p.grid + 3) * (trainImages(p.trainSubset) + (p.testSubset ?? 10000)) / 3,
        });
      }
    }
  }
  if (opts.robust) stages.push(...robustStages(preset, opts, pairs, data, trainImages));
  const reportInputs = stages.filter((s) => s.kind === 'eval' || s.kind === 'plane').flatMap((s) => s.outputs);
  stages.push({
    name: 'report',
    kind: 'report',
    argv: ['report', out],
    inputs: reportInputs,
    outputs: [join(out, 'report.md'), join(out, 'results.json')],
    cost: 0,
  });
  return stages;
}

/** The adversarial stages: robust endpoints, robust curves between them, their robust evaluation. */
function robustStages(preset: Preset, opts: StageOptions, pairs: number, data: string[], trainImages: (n: number | undefined) => number): Stage[] {
  const { out } = opts;
  const stages: Stage[] = [];
  const checkpoint = (seed: number) => join(out, 'endpoints-robust', `seed${seed}`, 'checkpoint.safetensors');
  for (let seed = 1; seed <= 2 * pairs; seed++) {
    const folder = join(out, 'endpoints-robust', `seed${seed}`);
    const t = preset.train;
    stages.push({
      name: `train-adv-s${seed}`,
      kind: 'train',
      argv: ['train', '--adversarial', '--model', preset.model, '--dataset', preset.dataset, '--width', String(preset.width), '--epochs', String(t.epochs), '--seed', String(seed),
        ...flag('batch-size', t.batchSize), ...flag('train-subset', t.trainSubset), ...flag('test-subset', t.testSubset), ...data, '--out', folder],
      inputs: [],
      outputs: [checkpoint(seed)],
      folder,
      cost: PGD_STEP_COST * t.epochs * trainImages(t.trainSubset),
    });
  }
  for (let i = 1; i <= pairs; i++) {
    const [a, b] = [checkpoint(2 * i - 1), checkpoint(2 * i)];
    for (const variant of ROBUST_VARIANTS) {
      const folder = join(out, 'curves-robust', `pair${i}-${variant}`);
      const curveFile = join(folder, 'curve.safetensors');
      const c = preset.curve;
      stages.push({
        name: `curve-adv-p${i}-${variant}`,
        kind: 'curve',
        argv: ['curve', '--adversarial', '--a', a, '--b', b, '--align', VARIANT_ALIGN[variant], '--epochs', String(c.epochs),
          ...flag('batch-size', c.batchSize), ...flag('train-subset', c.trainSubset), ...flag('align-samples', c.alignSamples), ...data, '--out', folder],
        inputs: [a, b],
        outputs: [curveFile],
        folder,
        cost: PGD_STEP_COST * c.epochs * trainImages(c.trainSubset) * 1.2,
      });
      const e = preset.evaluation;
      const evalFile = join(out, 'eval', `robust-pair${i}-${variant}.json`);
      // Per point and path: the BN pass and the test pass each attacked (PGD-5), plus the clean test pass.
      const perPoint = (PGD_STEP_COST * (trainImages(e.trainSubset) + (e.testSubset ?? 10000))) / 3;
      stages.push({
        name: `eval-adv-p${i}-${variant}`,
        kind: 'eval',
        argv: ['eval-curve', '--robust', '--curve', curveFile, '--line', '--points', String(e.points), ...flag('train-subset', e.trainSubset), ...flag('test-subset', e.testSubset), ...data, '--json', evalFile],
        inputs: [curveFile, a, b],
        outputs: [evalFile],
        cost: 2 * e.points * perPoint,
      });
    }
  }
  return stages;
}
