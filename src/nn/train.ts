// The training loop (paper section 5, endpoint training): SGD over shuffled, augmented batches,
// a learning rate set per epoch from a schedule, an evaluation on the test set after each epoch.
//
// Data stays on the GPU (docs/ARCHITECTURE.md, "The command stream"): a step records forward,
// backward and the optimizer update and reads nothing back. Each step copies its loss and its
// count of correct predictions into a small window buffer [K, 2]; the window is read once every
// K steps (the log interval), which gives the running loss for progress and finds a NaN or
// infinite loss at its exact step.
//
// Everything random is a function of the seed and the epoch (the loader's order and augmentation)
// or lives in the model's state (dropout generators), so a run is bit-for-bit reproducible and a
// resumed run (train-run.ts) reaches the same weights as an uninterrupted one.
import { Tensor, abs, backward, crossEntropy, keep, noGrad, runtime, sum, tidy } from '../engine/index.js';
import type { Batch } from './data/index.js';
import { correctCount, evaluate, type BatchSource } from './evaluate.js';
import type { Module } from './module.js';
import type { LrSchedule, SGD } from './optim.js';

/** One line of log.jsonl: the results of one epoch (1-based) of training. */
export interface EpochLog {
  epoch: number;
  train_loss: number;
  train_acc: number;
  test_loss: number;
  test_acc: number;
  lr: number;
  /** Wall time of the epoch, evaluation included. */
  seconds: number;
  /** Training images per second (evaluation excluded). */
  images_per_s: number;
}

/** Where an epoch stands, reported after each read of the window. */
export interface StepProgress {
  /** 1-based epoch and its total. */
  epoch: number;
  epochs: number;
  /** Steps done in this epoch, of `steps`. */
  step: number;
  steps: number;
  /** Mean loss and accuracy over the epoch's images so far. */
  loss: number;
  accuracy: number;
  images: number;
  /** Wall time since the epoch started. */
  seconds: number;
}

/**
 * Training diverged: a NaN or infinite training loss (at a 1-based epoch and step), or non-finite
 * weights or test loss at the end of an epoch. The run stops before that epoch's checkpoint.
 */
export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
  constructor(
    message: string,
    readonly epoch: number,
    readonly step: number | null = null,
  ) {
    super(message);
  }
}

/**
 * The run was asked to stop (SIGINT, SIGTERM: src/cli/signals.ts) and stopped at a safe point:
 * between two steps, or after an epoch's checkpoint was written. `where` says where ("epoch 3,
 * step 4 of 6"); `epoch` is the epoch it was in, so epoch - 1 is the last one saved.
 */
export class RunStoppedError extends Error {
  override name = 'RunStoppedError';
  constructor(
    readonly signal: string,
    readonly where: string,
    readonly epoch: number,
  ) {
    super(`stopped by ${signal} at ${where}`);
  }
}

/** Throws RunStoppedError when `stop` was aborted (its reason is the signal's name). */
export function throwIfStopped(stop: AbortSignal | undefined, where: () => string, epoch: number): void {
  if (stop?.aborted) throw new RunStoppedError(String(stop.reason), where(), epoch);
}

export interface LoopOptions {
  model: Module;
  optimizer: SGD;
  /** Learning rate of each 0-based epoch. */
  schedule: LrSchedule;
  train: BatchSource;
  test?: BatchSource | null;
  /** The epoch to stop after (total of the run). */
  epochs: number;
  /** Epochs already done (a resumed run); default 0. */
  startEpoch?: number;
  /** Steps between read-backs (K); default 50. */
  readEvery?: number;
  onProgress?: (p: StepProgress) => void;
  /** Called after each epoch's evaluation; training waits for it (checkpoints are saved here). */
  onEpochEnd?: (log: EpochLog) => void | Promise<void>;
  /**
   * What a step minimizes (default: lossAndLogits of the model). A curve's objective runs the
   * network at a t drawn for the step, adds the L2 term, and reports the cross-entropy alone
   * (`logged`) as the step's training loss.
   */
  objective?: Objective;
  /** The tensors checked for NaN after every epoch (default: the model's state dict). */
  watch?: () => ReadonlyMap<string, Tensor>;
  /** Aborted when the run should stop: checked before every step (RunStoppedError). */
  stop?: AbortSignal;
}

/** A step's loss to minimize, the logits that score accuracy, and the loss to log (default `loss`). */
export type Objective = (batch: Batch, epoch: number, step: number) => { loss: Tensor; logits: Tensor; logged?: Tensor };

/**
 * The training loss and the logits that score accuracy: the model's own lossAndLogits when it has
 * one (GoogLeNet in training adds its auxiliary heads' cross-entropies weighted 0.3; accuracy
 * uses the main head), else cross-entropy of forward's logits.
 */
export function lossAndLogits(model: Module, x: Tensor, y: Tensor): { loss: Tensor; logits: Tensor } {
  if (model.lossAndLogits) return model.lossAndLogits(x, y);
  const logits = model.forward(x);
  return { loss: crossEntropy(logits, y), logits };
}

/**
 * The name of the first f32 parameter or buffer holding a NaN or infinity, or null. Each tensor's
 * sum of |values| (non-finite exactly when a value is, barring a sum beyond 3e38) is copied into
 * one vector, read once.
 */
export async function firstNonFinite(model: Module | ReadonlyMap<string, Tensor>): Promise<string | null> {
  const named = [...(model instanceof Map ? model : (model as Module).stateDict())].filter(([, t]) => t.dtype === 'f32' && t.size > 0);
  if (named.length === 0) return null;
  const sums = new Tensor([named.length], 'f32');
  const stream = runtime().stream;
  noGrad(() =>
    named.forEach(([, t], i) =>
      tidy(() => {
        stream.copy(sum(abs(t)).buffer, 0, sums.buffer, 4 * i, 4);
      }),
    ),
  );
  const values = await sums.toArray();
  sums.dispose();
  const i = values.findIndex((v) => !Number.isFinite(v));
  return i < 0 ? null : named[i]![0];
}

/**
 * One SGD step (forward, backward, update), recorded and not waited for; the step's loss and
 * count of correct predictions are copied into row `slot` of `window`. Returns the batch size.
 * Run it inside tidy(): the batch and the step's temporaries belong to the caller's scope.
 */
export function trainStep(model: Module, optimizer: SGD, batch: Batch, window: Tensor, slot: number, objective?: () => ReturnType<Objective>): number {
  const stream = runtime().stream;
  const { y } = batch;
  const out: ReturnType<Objective> = objective ? objective() : lossAndLogits(model, batch.x, y);
  const { loss, logits, logged = loss } = out;
  // The step's activations are freed as backward passes them (autograd.ts): only the loss, the
  // logits and the logged value are read afterwards.
  backward(loss, { free: { except: [logits, logged] } });
  noGrad(() => {
    optimizer.step();
    const hits = correctCount(logits, y);
    stream.copy(logged.buffer, 0, window.buffer, slot * 8, 4);
    stream.copy(hits.buffer, 0, window.buffer, slot * 8 + 4, 4);
  });
  optimizer.zeroGrad();
  return y.size;
}

/** Trains epochs startEpoch + 1 .. epochs; returns their log records. */
export async function trainLoop(o: LoopOptions): Promise<EpochLog[]> {
  const { model, optimizer, train } = o;
  const readEvery = Math.max(1, Math.floor(o.readEvery ?? 50));
  const steps = train.length;
  const stream = runtime().stream;
  // Slot k holds step k's [loss, correct count] until the next read.
  const window = keep(new Tensor([Math.min(readEvery, steps), 2], 'f32'));
  const logs: EpochLog[] = [];
  try {
    for (let e = o.startEpoch ?? 0; e < o.epochs; e++) {
      const started = performance.now();
      const lr = o.schedule(e);
      optimizer.lr = lr;
      model.train();
      let lossSum = 0;
      let correct = 0;
      let images = 0;
      let sizes: number[] = []; // batch sizes of the steps in the window
      for (let i = 0; i < steps; i++) {
        // The safe point: the previous step is recorded whole, and the last checkpoint (or its
        // write, awaited in onEpochEnd) is on disk. The steps since are lost; resume redoes them.
        throwIfStopped(o.stop, () => `epoch ${e + 1}, step ${i} of ${steps}`, e + 1);
        sizes.push(
          tidy(() => {
            const batch = train.batch(e, i);
            return trainStep(model, optimizer, batch, window, sizes.length, o.objective && (() => o.objective!(batch, e, i)));
          }),
        );
        if (sizes.length < window.shape[0]! && i + 1 < steps) continue;
        const values = new Float32Array(await stream.read(window.buffer, sizes.length * 8));
        const first = i + 1 - sizes.length; // 0-based step of slot 0
        sizes.forEach((b, k) => {
          const loss = values[2 * k]!;
          if (!Number.isFinite(loss)) {
            const step = first + k + 1;
            const where = `epoch ${e + 1}, step ${step} of ${steps}`;
            throw new TrainingDivergedError(`training loss is ${loss} at ${where}: training diverged (try a smaller --lr)`, e + 1, step);
          }
          lossSum += loss * b;
          correct += values[2 * k + 1]!;
          images += b;
        });
        sizes = [];
        const seconds = (performance.now() - started) / 1000;
        o.onProgress?.({ epoch: e + 1, epochs: o.epochs, step: i + 1, steps, loss: lossSum / images, accuracy: correct / images, images, seconds });
      }
      const trainSeconds = (performance.now() - started) / 1000;
      // A NaN need not show in the loss (a batch-norm running statistic is not read in training
      // mode): check the weights and buffers themselves before they can reach a checkpoint.
      const bad = await firstNonFinite(o.watch ? new Map(o.watch()) : model);
      if (bad) throw new TrainingDivergedError(`'${bad}' holds NaN or infinite values after epoch ${e + 1}: training diverged (try a smaller --lr)`, e + 1);
      const test = o.test ? await evaluate(model, o.test) : { loss: NaN, accuracy: NaN };
      if (o.test && !Number.isFinite(test.loss)) throw new TrainingDivergedError(`test loss is ${test.loss} after epoch ${e + 1}: training diverged`, e + 1);
      const log: EpochLog = {
        epoch: e + 1,
        train_loss: lossSum / images,
        train_acc: correct / images,
        test_loss: test.loss,
        test_acc: test.accuracy,
        lr,
        seconds: (performance.now() - started) / 1000,
        images_per_s: images / trainSeconds,
      };
      await o.onEpochEnd?.(log);
      logs.push(log);
    }
    return logs;
  } finally {
    window.dispose();
  }
}
