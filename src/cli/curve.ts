// `neuralign curve`: trains a curve between two endpoint checkpoints (src/align/curve-run.ts):
// flags -> CurveTrainingOptions (the paper's curve recipe for what is not given), progress as
// `train` shows it, the curve file and its per-epoch checkpoint pair in --out, exact --resume.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runtime } from '../engine/index.js';
import { CURVE_FILE } from '../align/curve-file.js';
import { PAM_P_FILE, PAM_RECORD_FILE } from '../align/pam-run.js';
import { PAM_RELAXATIONS } from '../align/pam-sinkhorn.js';
import { CURVE_KINDS } from '../align/curve.js';
import { CURVE_ALIGN_METHODS, runCurveTraining, type CurveTrainingOptions } from '../align/curve-run.js';
import { RunStoppedError, TrainingDivergedError } from '../nn/train.js';
import { SCHEDULE_NAMES } from '../nn/train-run.js';
import { UsageError, choice, nonNegative, positiveInteger, type FlagSpec, type Flags } from './args.js';
import { defineCommand } from './command.js';
import { ProgressReporter, formatDuration } from './progress.js';
import { stopSignal } from './signals.js';
import { PGD_FLAGS, adversarialFromFlags, describePgd } from './pgd-flags.js';

// Recipe flags have no parser default: absent means the paper's value for a new curve and the
// curve file's value for --resume.
const spec = {
  a: { type: 'string', help: 'endpoint checkpoint at t = 0 (required)' },
  b: { type: 'string', help: 'endpoint checkpoint at t = 1 (required; aligned to A first with --align)' },
  out: { type: 'string', help: 'output folder: curve.safetensors, optimizer-epoch{E}.safetensors, log.jsonl, alignment.json (required)' },
  curve: { type: 'string', help: `curve family: ${CURVE_KINDS.join(', ')} (default bezier)` },
  bends: { type: 'number', help: 'control points including both endpoints (default 3: the quadratic Bezier of the paper)' },
  'init-bends': { type: 'string', help: 'linear (on the straight line, the default) or random (a fresh initialization, Garipov\'s option)' },
  align: {
    type: 'string',
    help:
      `${CURVE_ALIGN_METHODS.join(', ')}: connect A to B as trained, or to B aligned by activation correlation (the paper) or weight matching; ` +
      'pam-unaligned / pam-aligned: PAM (section 3) optimizes the permutation with the curve, starting from B as trained or aligned (default none)',
  },
  'pam-p-epochs': { type: 'number', help: "PAM: epochs of the P-step before the curve's own training (default 20)" },
  'pam-lr': { type: 'number', help: "PAM: initial learning rate of the P-step, SGD's (projected) or Adam's times tau / tau_start (sinkhorn) (default half of --lr: 0.05, as the official code)" },
  'pam-nu': { type: 'number', help: 'PAM: nu of the proximal term (1/2 nu) ||x - x_old||^2 on P and on phi (default 1000)' },
  'pam-candidates': { type: 'number', help: 'PAM: random rounding candidates drawn from the Birkhoff-von Neumann decomposition (default 32)' },
  'pam-bvn-terms': { type: 'number', help: 'PAM: largest Birkhoff-von Neumann terms kept for the draws (default 11)' },
  'pam-relax': {
    type: 'string',
    help: "PAM: the P-step's relaxation: projected (the paper's projected gradient onto the Birkhoff polytope, the default) or sinkhorn (P = Sinkhorn(L / tau) of trained logits L, Adam, tau annealed; beyond the paper)",
  },
  'pam-tau-start': { type: 'number', help: 'PAM sinkhorn: temperature at the first P-step (default 1)' },
  'pam-tau-end': { type: 'number', help: 'PAM sinkhorn: temperature at the last P-step, annealed geometrically per step; the rounding reads Sinkhorn(L / tau_end) (default 0.01)' },
  'align-samples': { type: 'number', help: 'training images the correlation alignment uses (default 10000, as the paper)' },
  epochs: { type: 'number', help: 'epochs (default 250)' },
  lr: { type: 'number', help: 'initial learning rate (default 0.1)' },
  wd: { type: 'number', help: 'wd of the L2 term 1/2 wd ||w(t)||^2 (default 5e-4; the optimizer has no weight decay of its own)' },
  momentum: { type: 'number', help: 'Nesterov momentum (default 0.9)' },
  'batch-size': { type: 'number', help: "batch size (default: the endpoints' training batch size)" },
  schedule: { type: 'string', help: `learning-rate schedule: ${SCHEDULE_NAMES.join(', ')} (default tatro; garipov is Garipov et al.'s)` },
  seed: { type: 'number', help: 'seed of the data order, augmentation, the t of each batch and random bends (default 1)' },
  'train-subset': { type: 'number', help: 'train on the first N training images' },
  'no-augment': { type: 'boolean', help: "no augmentation (default: as the endpoints were trained)" },
  'data-dir': { type: 'string', help: "data folder (default: endpoint A's training data folder)" },
  resume: { type: 'boolean', help: "continue --out's curve (same endpoints and recipe; --epochs may grow)" },
  adversarial: { type: 'boolean', help: "robust curve (Tatro et al. section 4): PGD examples against the curve at each batch's t; default 200 epochs, garipov schedule, the endpoints' attack (else --eps 8/255 --step 2/255 --steps 5)" },
  ...PGD_FLAGS,
  'log-every': { type: 'number', help: 'read the loss every K batches: progress, plain log lines, NaN checks', default: 50 },
} satisfies FlagSpec;

async function run(flags: Flags<typeof spec>): Promise<number> {
  for (const name of ['a', 'b', 'out'] as const) if (!flags[name]) throw new UsageError(`--${name} is required`);
  const initBends = choice(flags['init-bends'], ['linear', 'random'] as const, 'init-bends');
  const given: Partial<CurveTrainingOptions> = {
    curve: choice(flags.curve, CURVE_KINDS, 'curve'),
    points: positiveInteger(flags.bends, 'bends'),
    init: initBends,
    align: choice(flags.align, CURVE_ALIGN_METHODS, 'align'),
    alignSamples: positiveInteger(flags['align-samples'], 'align-samples'),
    epochs: positiveInteger(flags.epochs, 'epochs'),
    lr: nonNegative(flags.lr, 'lr'),
    weightDecay: nonNegative(flags.wd, 'wd'),
    momentum: nonNegative(flags.momentum, 'momentum'),
    nesterov: flags.momentum === 0 ? false : undefined,
    batchSize: positiveInteger(flags['batch-size'], 'batch-size'),
    schedule: choice(flags.schedule, SCHEDULE_NAMES, 'schedule'),
    seed: flags.seed,
    trainSubset: positiveInteger(flags['train-subset'], 'train-subset'),
    augment: flags['no-augment'] ? false : undefined,
    dataDir: flags['data-dir'],
    pamPEpochs: positiveInteger(flags['pam-p-epochs'], 'pam-p-epochs'),
    pamNu: flags['pam-nu'],
    pamLr: nonNegative(flags['pam-lr'], 'pam-lr'),
    pamCandidates: flags['pam-candidates'],
    pamBvnTerms: positiveInteger(flags['pam-bvn-terms'], 'pam-bvn-terms'),
    // 'projected' is the absence of a relaxation in the recipe (so projected runs stay as they were).
    pamRelax: choice(flags['pam-relax'], PAM_RELAXATIONS, 'pam-relax') === 'sinkhorn' ? 'sinkhorn' : undefined,
    pamTauStart: flags['pam-tau-start'],
    pamTauEnd: flags['pam-tau-end'],
    ...adversarialFromFlags(flags),
  };
  for (const f of ['pam-tau-start', 'pam-tau-end'] as const) {
    const v = flags[f];
    if (v !== undefined && !(v > 0 && Number.isFinite(v))) throw new UsageError(`--${f} needs a positive number, got ${v}`);
    if (v !== undefined && given.pamRelax !== 'sinkhorn') throw new UsageError(`--${f} applies to --pam-relax sinkhorn only`);
  }
  if (given.pamCandidates !== undefined && !(Number.isInteger(given.pamCandidates) && given.pamCandidates >= 0)) throw new UsageError(`--pam-candidates needs an integer >= 0, got ${given.pamCandidates}`);
  if (given.pamNu !== undefined && !(given.pamNu > 0)) throw new UsageError(`--pam-nu needs a positive number, got ${given.pamNu}`);
  const pamFlag = (['pam-p-epochs', 'pam-lr', 'pam-nu', 'pam-candidates', 'pam-bvn-terms', 'pam-relax'] as const).find((f) => flags[f] !== undefined);
  if (pamFlag && given.align !== undefined && !given.align.startsWith('pam-')) throw new UsageError(`--${pamFlag} applies to --align pam-unaligned or pam-aligned only`);
  if (given.points !== undefined && given.points < 3) throw new UsageError(`--bends needs at least 3 control points (the endpoints and one bend), got ${given.points}`);
  if (given.seed !== undefined && !(Number.isInteger(given.seed) && given.seed >= 0 && given.seed < 2 ** 32)) throw new UsageError(`--seed needs an integer in 0..2^32-1, got ${given.seed}`);
  const logEvery = positiveInteger(flags['log-every'], 'log-every')!;

  const progress = new ProgressReporter(process.stderr);
  let epochs = 0;
  let result;
  try {
    result = await runCurveTraining(flags.a!, flags.b!, given, flags.out!, {
      resume: flags.resume,
      readEvery: logEvery,
      stop: stopSignal(),
      hooks: {
        onMessage: (line) => console.error(line),
        onAlign: (r, reused) =>
          console.error(
            reused
              ? `alignment (${r.method}) reused from ${flags.out}/alignment.json`
              : `aligned B to A by ${r.method}${r.images ? ` on ${r.images} training images` : ''} in ${formatDuration(r.seconds)}; report in ${flags.out}/alignment.json`,
          ),
        onStart: (s) => {
          const o = s.options;
          epochs = o.epochs;
          if (s.startEpoch >= o.epochs) return; // nothing to do: said once the run returns
          console.error(
            `${s.startEpoch > 0 ? `resuming at epoch ${s.startEpoch + 1}: ` : ''}${o.curve} curve with ${o.points} control points (${s.parameters.toLocaleString('en-US')} trainable) ` +
              `from ${flags.a} to ${s.permuted ? `P(${flags.b}) (${o.align})` : flags.b}; ${s.trainImages} train images, batch ${o.batchSize}, ${o.epochs} epochs, ` +
              `lr ${o.lr} (${o.schedule}), L2 ${o.weightDecay}, momentum ${o.momentum}${o.nesterov ? ' nesterov' : ''}, ${o.augment ? 'augmented' : 'no augmentation'}, ` +
              `bends ${o.init}, seed ${o.seed}; ` +
              (o.adversarial ? `adversarial: ${describePgd({ eps: o.pgdEps!, step: o.pgdStep!, steps: o.pgdSteps! })} examples at each batch's t; ` : '') +
              `${runtime().info.description} via ${runtime().info.backend}`,
          );
        },
        onProgress: (p) => progress.step(p),
        onEpochEnd: (log) => progress.epoch(log, epochs),
        pam: {
          onPhase: (phase, info) =>
            console.error(
              phase === 'P-step'
                ? `PAM P-step (${info.relax === 'sinkhorn' ? 'Sinkhorn relaxation' : 'projected gradient'}): ${info.groups.length} relaxed permutation(s) (${info.groups.join(', ')}), ${info.epochs} epochs${info.startEpoch ? `, resuming at epoch ${info.startEpoch + 1}` : ''}`
                : 'PAM rounding: Birkhoff-von Neumann candidates scored by training NLL',
            ),
          onProgress: (p) => progress.step(p),
          onPEpochEnd: (log) => {
            progress.close();
            const distance = Object.entries(log.distance).map(([g, d]) => `${g} ${d.toFixed(4)}`).join('  ');
            const tau = log.tau === undefined ? '' : `  tau ${log.tau.toPrecision(3)} (sums within ${log.sinkhornError!.toExponential(1)})`;
            console.error(`P-step epoch ${log.epoch}  train loss ${log.train_loss.toFixed(4)} acc ${(100 * log.train_acc).toFixed(2)}%  lr ${log.lr.toPrecision(4)}${tau}  ${formatDuration(log.seconds)}  distance from a permutation: ${distance}`);
          },
          onCandidate: (i, total, c) =>
            console.error(`rounding candidate ${i + 1}/${total} (${c.source}${c.sameAs !== null ? `, same as ${c.sameAs + 1}` : ''}): train NLL ${c.loss.toFixed(4)} acc ${(100 * c.accuracy).toFixed(2)}%`),
          onDone: (r, reused) => {
            const moved = Object.entries(r.moved).map(([g, n]) => `${g} ${n}`).join('  ');
            console.error(
              `${reused ? `PAM permutation reused from ${flags.out}/pam.json` : `PAM permutation: candidate ${r.chosen + 1} (${r.candidates[r.chosen]!.source}), train NLL ${r.candidates[r.chosen]!.loss.toFixed(4)}; P-step ${formatDuration(r.seconds.pStep)}, rounding ${formatDuration(r.seconds.rounding)}`}; ` +
                (r.sinkhorn ? `rounded from Sinkhorn(L / tau_end) after ${r.sinkhorn.iterations} rounds, sums within ${r.sinkhorn.error.toExponential(1)} of 1; ` : '') +
                `units moved from the start: ${moved}; phi-step next`,
            );
          },
        },
      },
    });
  } catch (e) {
    progress.close();
    if (e instanceof TrainingDivergedError) {
      const saved = e.epoch - 1;
      throw new Error(`${e.message}; ${saved > 0 ? `the curve of epoch ${saved} in ${flags.out} is kept` : 'no curve was written'}`);
    }
    if (e instanceof RunStoppedError) {
      // What is on disk (alignment, PAM's P-step epochs, curve epochs) is kept and reused by --resume.
      const resumable = [CURVE_FILE, PAM_P_FILE, PAM_RECORD_FILE].some((f) => existsSync(join(flags.out!, f)));
      const how = resumable
        ? `what ${flags.out} holds is kept: continue with: neuralign curve --a ${flags.a} --b ${flags.b} --out ${flags.out} --resume`
        : 'no curve was written; rerun the same command to start again';
      throw new RunStoppedError(e.signal, `${e.where}; ${how}`, e.epoch);
    }
    throw e;
  }
  const last = result.logs[result.logs.length - 1];
  if (!last) {
    console.log(`${flags.out}: the curve is already trained for ${result.epoch} epochs; nothing to do`);
    return 0;
  }
  console.log(`trained the curve to epoch ${last.epoch}: train loss ${last.train_loss.toFixed(4)} (at random t); ${result.curveFile}`);
  console.log(`evaluate it with: neuralign eval-curve --curve ${result.curveFile} [--line]`);
  return 0;
}

export const curve = defineCommand({
  usage: 'neuralign curve --a A.safetensors --b B.safetensors --out DIR [--align none|correlation|weights|pam-unaligned|pam-aligned] [options]',
  description:
    'Trains a mode-connecting curve between two endpoints (Tatro et al. 2020, section 2; Garipov et al. 2018): the endpoints\n' +
    'fixed, the bends trained on the cross-entropy at one t ~ U[0, 1] per batch plus 1/2 wd ||w(t)||^2. With --align, B is\n' +
    "first permuted into A's unit order, and the curve connects A to P(B). With --align pam-*, P is optimized first (PAM's\n" +
    'P-step and rounding, section 3) and the curve is trained to the rounded P(B) with a proximal term on the bend.',
  spec,
  run,
});
