// The reproduction's presets: one model and data set each, with the paper's hyperparameters
// (../README.md "Reproducing the paper"; the method and the paper's numbers are summarized in
// docs/ARCHITECTURE.md). A preset says how to train the endpoints, the curves and how to evaluate
// them; the stage graph (stages.ts) turns it into commands.
import type { ModelName } from '../nn/models/index.js';

export interface Preset {
  name: string;
  description: string;
  model: ModelName;
  dataset: string;
  width: number;
  /** Endpoint training (`neuralign train`). */
  train: { epochs: number; batchSize?: number; trainSubset?: number; testSubset?: number };
  /** Curve training (`neuralign curve`), for every variant. */
  curve: { epochs: number; batchSize?: number; trainSubset?: number; alignSamples?: number };
  /** Evaluation along t (`neuralign eval-curve --line`). */
  evaluation: { points: number; trainSubset?: number; testSubset?: number };
  /** The loss plane of the aligned and unaligned curves of the first pair (`neuralign plane`), or none. */
  plane: { grid: number; trainSubset?: number; testSubset?: number } | null;
  /** Pairs of endpoint seeds, (1, 2), (3, 4), ... unless --pairs says otherwise. */
  pairs: number;
  /** The curves to train (default: every variant `neuralign curve` offers). */
  variants?: CurveVariant[];
  /** The paper's numbers for this configuration (section 6), where it reports them. */
  paper?: PaperNumbers;
  /** CIFAR presets read their data from --data-dir. */
  needsDataDir?: boolean;
}

/** The paper's main table for one model and data set: test accuracy in %, mean and std over 3 pairs. */
export interface PaperNumbers {
  endpoints: [number, number];
  curves: Partial<Record<CurveVariant, { avg: [number, number]; min: [number, number] }>>;
}

/** The curves the paper compares (PAM variants once `neuralign curve` offers them). */
export const CURVE_VARIANTS = ['unaligned', 'pam-unaligned', 'pam-aligned', 'aligned'] as const;
export type CurveVariant = (typeof CURVE_VARIANTS)[number];

/** `neuralign curve --align` for each variant. */
export const VARIANT_ALIGN: Record<CurveVariant, string> = {
  unaligned: 'none',
  aligned: 'correlation',
  'pam-unaligned': 'pam-unaligned',
  'pam-aligned': 'pam-aligned',
};

const full = (model: ModelName, dataset: string, extra: Partial<Preset> = {}): Preset => ({
  name: `${dataset === 'fashion-mnist' ? 'fashion' : dataset}-${model}`,
  description: `${model} on ${dataset}, the paper's full recipe (250 epochs; for a GPU machine)`,
  model,
  dataset,
  width: 1,
  train: { epochs: 250 },
  curve: { epochs: 250 },
  evaluation: { points: 65 },
  plane: { grid: 17 },
  pairs: 3,
  ...extra,
});

/** Paper section 6, main table (NeuronAlignment README). */
const PAPER: Record<string, PaperNumbers> = {
  'cifar10-tinyten': {
    endpoints: [89.0, 0.1],
    curves: { unaligned: { avg: [87.4, 0.1], min: [82.8, 0.5] }, 'pam-unaligned': { avg: [87.6, 0.1], min: [84.0, 0.3] }, 'pam-aligned': { avg: [88.4, 0.1], min: [87.6, 0.2] }, aligned: { avg: [88.5, 0.1], min: [87.8, 0.1] } },
  },
  'cifar100-tinyten': {
    endpoints: [58.1, 0.5],
    curves: { unaligned: { avg: [56.0, 0.2], min: [53.2, 1.1] }, 'pam-unaligned': { avg: [57.3, 0.2], min: [55.9, 0.9] }, 'pam-aligned': { avg: [58.8, 0.1], min: [57.7, 0.3] }, aligned: { avg: [58.7, 0.2], min: [57.7, 0.4] } },
  },
  'cifar10-resnet32': {
    endpoints: [92.9, 0.1],
    curves: { unaligned: { avg: [92.2, 0.1], min: [89.1, 0.2] }, 'pam-unaligned': { avg: [92.4, 0.1], min: [89.9, 0.2] }, 'pam-aligned': { avg: [92.7, 0.0], min: [92.1, 0.1] }, aligned: { avg: [92.7, 0.1], min: [92.2, 0.0] } },
  },
  'cifar100-resnet32': {
    endpoints: [67.1, 0.5],
    curves: { unaligned: { avg: [66.5, 0.2], min: [64.7, 0.4] }, 'pam-unaligned': { avg: [67.0, 0.1], min: [66.1, 0.1] }, 'pam-aligned': { avg: [67.6, 0.4], min: [66.8, 0.1] }, aligned: { avg: [67.7, 0.1], min: [66.6, 0.1] } },
  },
  'cifar100-googlenet': {
    endpoints: [73.2, 0.4],
    curves: { unaligned: { avg: [73.1, 0.4], min: [69.8, 0.3] }, aligned: { avg: [73.4, 0.3], min: [72.9, 0.3] } },
  },
};

export const PRESETS: Record<string, Preset> = {
  // Sized for the slower of this workplace's 2-core machines (no GPU): the whole run, set-up
  // included, within 15 minutes. TinyTen at half width has batch norm (so BN re-estimation along
  // t matters, as in the paper) and is small enough to train on the CPU.
  quick: {
    name: 'quick',
    description: 'TinyTen at width 0.5 on 3,000 Fashion-MNIST images, one pair: endpoints 6 epochs, curves 2 (minutes on a CPU)',
    model: 'tinyten',
    dataset: 'fashion-mnist',
    width: 0.5,
    // The endpoints train longer than the curves: a curve trained as long as (or longer than)
    // under-trained endpoints simply improves on them, and its minimum is an endpoint.
    train: { epochs: 6, trainSubset: 3000, testSubset: 1500 },
    curve: { epochs: 2, trainSubset: 3000, alignSamples: 2000 },
    evaluation: { points: 9, trainSubset: 1500, testSubset: 1500 },
    plane: null,
    pairs: 1,
    // PAM's P-step (20 epochs) and its 34 candidate passes do not fit the quick budget.
    variants: ['unaligned', 'aligned'],
  },
  // A synthetic preset of seconds, for the pipeline's own tests.
  tiny: {
    name: 'tiny',
    description: 'an MLP on 192 synthetic images, one epoch each (seconds; for tests)',
    model: 'mlp',
    dataset: 'synthetic',
    width: 1 / 16,
    train: { epochs: 1, batchSize: 32, trainSubset: 192, testSubset: 64 },
    curve: { epochs: 1, batchSize: 32, trainSubset: 192, alignSamples: 192 },
    evaluation: { points: 3, trainSubset: 192, testSubset: 64 },
    plane: { grid: 3, trainSubset: 192, testSubset: 64 },
    pairs: 1,
  },
  'fashion-tinyten': full('tinyten', 'fashion-mnist'),
  'fashion-resnet32': full('resnet32', 'fashion-mnist'),
  'fashion-vgg16': full('vgg16', 'fashion-mnist'),
  'cifar10-tinyten': full('tinyten', 'cifar10', { train: { epochs: 250, batchSize: 64 }, paper: PAPER['cifar10-tinyten'], needsDataDir: true }),
  'cifar10-resnet32': full('resnet32', 'cifar10', { paper: PAPER['cifar10-resnet32'], needsDataDir: true }),
  'cifar100-tinyten': full('tinyten', 'cifar100', { paper: PAPER['cifar100-tinyten'], needsDataDir: true }),
  'cifar100-resnet32': full('resnet32', 'cifar100', { paper: PAPER['cifar100-resnet32'], needsDataDir: true }),
  // GoogLeNet: the paper compares only the unaligned and aligned curves.
  'cifar100-googlenet': full('googlenet', 'cifar100', { paper: PAPER['cifar100-googlenet'], needsDataDir: true, variants: ['unaligned', 'aligned'] }),
};

export const PRESET_NAMES = Object.keys(PRESETS);
