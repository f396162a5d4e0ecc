// Model checkpoints: a model's state dict (PyTorch's key names, so `safetensors.torch.load_file`
// gives a dict that `model.load_state_dict` of the same architecture accepts) plus metadata that
// says how to rebuild the model and where training stood; the optimizer's momentum buffers go in
// a companion file next to it.
//
// A training folder holds
//   checkpoint.safetensors           weights and buffers after epoch E (metadata "epoch": E)
//   optimizer-epoch{E}.safetensors   SGD momentum buffers after the same epoch
// and is written in that order, companion first: a run killed at any moment leaves the previous
// pair whole (each file is replaced atomically, and an older optimizer file is deleted only after
// the checkpoint naming the new epoch is in place), so resume always finds the optimizer file of
// the checkpoint's epoch.
//
// Dropout masks come from Generators (seed, offset) held by Dropout modules; the offsets are part
// of the training state, saved in the metadata and restored on load, so a resumed run draws the
// same masks as an uninterrupted one.
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Generator, Tensor } from '../../engine/index.js';
import { Dropout } from '../layers/dropout.js';
import { MODEL_NAMES, createModel, type ModelConfig, type ModelName } from '../models/index.js';
import type { Module } from '../module.js';
import type { SGD } from '../optim.js';
import { firstNonFinite } from '../train.js';
import { crashPoint } from './atomic.js';
import { CheckpointError, loadSafetensors, saveSafetensors, toGpuTensors, type CpuTensor } from './safetensors.js';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

/** The companion file of the checkpoint after `epoch` epochs. */
export function optimizerFile(epoch: number): string {
  return `optimizer-epoch${epoch}.safetensors`;
}
const OPTIMIZER_FILE = /^optimizer-epoch(\d+)\.safetensors$/;

export interface GeneratorState {
  seed: number;
  offset: number;
}

/** What a checkpoint says about itself (stored as string values of the safetensors metadata). */
export interface CheckpointMetadata {
  model: ModelName;
  config: ModelConfig;
  dataset: string;
  seed: number;
  /** Epochs completed. */
  epoch: number;
  /** The training options of the run (JSON object). */
  training: Record<string, unknown>;
  /** Offsets of the model's dropout generators, in module order. */
  generators: GeneratorState[];
  /** The last epoch's log record, when there is one. */
  metrics?: Record<string, number>;
}

/** The distinct Generators of the model's Dropout modules, in module order. */
export function dropoutGenerators(model: Module): Generator[] {
  const out: Generator[] = [];
  for (const [, m] of model.namedModules()) if (m instanceof Dropout && !out.includes(m.generator)) out.push(m.generator);
  return out;
}

export function generatorStates(model: Module): GeneratorState[] {
  return dropoutGenerators(model).map((g) => ({ seed: g.seed, offset: g.offset }));
}

function encode(meta: CheckpointMetadata): Record<string, string> {
  const out: Record<string, string> = {
    format: 'pt', // what safetensors.torch.save_file writes; some loaders check it
    model: meta.model,
    config: JSON.stringify(meta.config),
    dataset: meta.dataset,
    seed: String(meta.seed),
    epoch: String(meta.epoch),
    training: JSON.stringify(meta.training),
    generators: JSON.stringify(meta.generators),
  };
  if (meta.metrics) out.metrics = JSON.stringify(meta.metrics);
  return out;
}

/** Parses and checks a checkpoint's metadata; `where` names the file in errors. */
export function decodeMetadata(raw: Record<string, string>, where: string): CheckpointMetadata {
  const fail = (what: string): never => {
    throw new CheckpointError(`${where}: ${what}`);
  };
  for (const key of ['model', 'config', 'dataset', 'seed', 'epoch', 'training', 'generators']) {
    if (raw[key] === undefined) fail(`not a neuralign checkpoint (its metadata has no '${key}')`);
  }
  const json = (key: string): unknown => {
    try {
      return JSON.parse(raw[key]!);
    } catch {
      return fail(`metadata '${key}' is not valid JSON`);
    }
  };
  const integer = (key: string): number => {
    const v = Number(raw[key]);
    if (!Number.isSafeInteger(v) || v < 0) fail(`metadata '${key}' is ${JSON.stringify(raw[key])}, not a non-negative integer`);
    return v;
  };
  const model = raw.model as ModelName;
  if (!MODEL_NAMES.includes(model)) fail(`unknown model '${model}' (expected one of ${MODEL_NAMES.join(', ')})`);
  const config = json('config') as ModelConfig;
  const okConfig = isObject(config) && ['inChannels', 'numClasses', 'width', 'seed'].every((k) => typeof (config as unknown as Record<string, unknown>)[k] === 'number');
  if (!okConfig) fail(`metadata 'config' is not a model configuration {inChannels, numClasses, width, seed}`);
  const training = json('training');
  if (!isObject(training)) fail(`metadata 'training' is not a JSON object`);
  const generators = json('generators') as GeneratorState[];
  if (!Array.isArray(generators) || !generators.every((g) => isObject(g) && Number.isInteger(g.seed) && Number.isInteger(g.offset))) {
    fail(`metadata 'generators' is not a list of {seed, offset}`);
  }
  const meta: CheckpointMetadata = {
    model,
    config,
    dataset: raw.dataset!,
    seed: integer('seed'),
    epoch: integer('epoch'),
    training: training as Record<string, unknown>,
    generators,
  };
  if (raw.metrics !== undefined) meta.metrics = json('metrics') as Record<string, number>;
  return meta;
}

/**
 * What keeps two checkpoints from being aligned, interpolated or connected by a curve: a different
 * architecture, size (width, input channels, classes) or data set. Their seeds may differ: that
 * is the point. Empty when they form a pair.
 */
export function pairDifferences(a: CheckpointMetadata, b: CheckpointMetadata): string[] {
  const diffs: string[] = [];
  if (a.model !== b.model) diffs.push('architecture');
  for (const key of ['width', 'inChannels', 'numClasses'] as const) if (a.config[key] !== b.config[key]) diffs.push(key);
  if (a.dataset !== b.dataset) diffs.push('dataset');
  return diffs;
}

/** Writes the model's state dict and metadata to `path` atomically. */
export async function saveModel(path: string, model: Module, meta: CheckpointMetadata): Promise<void> {
  await saveSafetensors(path, model.stateDict(), encode(meta));
}

/**
 * Saves the training state after epoch `meta.epoch` into `dir`: the optimizer file, then the
 * checkpoint, then deletes the optimizer files of other epochs (see the top of this file).
 */
export async function saveTrainingState(dir: string, model: Module, optimizer: SGD, meta: CheckpointMetadata): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveCheckpointPair(dir, meta.epoch, optimizer, (path) => saveModel(path, model, meta));
}

/**
 * The checkpoint pair of epoch `epoch` in `dir`, in the order that keeps a consistent pair on disk
 * at every moment: the optimizer file of `epoch`, then the main file (`writeMain(path)`: a model
 * checkpoint, a curve file), then the optimizer files of other epochs are deleted. Crash tests
 * stop the process between the steps (crashPoint; the writes themselves at 'rename:FILE').
 */
export async function saveCheckpointPair(dir: string, epoch: number, optimizer: SGD, writeMain: (path: string) => Promise<void>, main = CHECKPOINT_FILE): Promise<void> {
  await saveSafetensors(join(dir, optimizerFile(epoch)), optimizer.stateDict(), { format: 'pt', epoch: String(epoch) });
  crashPoint('pair:optimizer-written');
  await writeMain(join(dir, main));
  crashPoint('pair:main-written');
  await removeOptimizerFiles(dir, (e) => e !== epoch);
}

/** Deletes the optimizer files in `dir` whose epoch satisfies `which`. */
export async function removeOptimizerFiles(dir: string, which: (epoch: number) => boolean): Promise<void> {
  for (const name of await readdir(dir)) {
    const m = OPTIMIZER_FILE.exec(name);
    if (m && which(Number(m[1]))) await unlink(join(dir, name)).catch(() => undefined);
  }
}

export interface CheckpointFile {
  meta: CheckpointMetadata;
  tensors: Map<string, CpuTensor>;
  /**
   * The metadata strings as stored, keys beyond CheckpointMetadata's included (`align` records
   * its permutations there); a derived checkpoint such as an aligned B starts from these.
   */
  raw?: Record<string, string>;
}

/** Reads and validates a checkpoint file and its metadata (CPU side). */
export async function readCheckpoint(path: string): Promise<CheckpointFile & { raw: Record<string, string> }> {
  const file = await loadSafetensors(path);
  return { meta: decodeMetadata(file.metadata, path), tensors: file.tensors, raw: file.metadata };
}

/**
 * Copies a checkpoint's tensors into `model` (names, shapes and dtypes must match exactly) and
 * restores its dropout generators' offsets. Errors are one-line CheckpointErrors naming the file.
 */
export function loadInto(model: Module, file: CheckpointFile, where: string): void {
  const gpu = toGpuTensors(file.tensors, where);
  try {
    model.loadStateDict(gpu);
  } catch (e) {
    throw new CheckpointError(`${where}: does not fit ${file.meta.model} ${JSON.stringify(file.meta.config)}: ${(e as Error).message}`);
  } finally {
    for (const t of gpu.values()) t.dispose();
  }
  restoreGenerators(model, file.meta.generators, where);
}

/**
 * Sets the offsets of `model`'s dropout generators to saved states (a checkpoint's, a curve
 * file's), so a resumed run draws the masks an uninterrupted one would; the count and the seeds
 * must match the model's.
 */
export function restoreGenerators(model: Module, saved: readonly GeneratorState[], where: string): void {
  const generators = dropoutGenerators(model);
  if (saved.length !== generators.length) {
    throw new CheckpointError(`${where}: holds ${saved.length} dropout generator state(s), the model has ${generators.length}`);
  }
  generators.forEach((g, i) => {
    if (g.seed !== saved[i]!.seed) throw new CheckpointError(`${where}: dropout generator ${i} has seed ${saved[i]!.seed}, the model's has ${g.seed}`);
    g.offset = saved[i]!.offset;
  });
}

/** A checkpoint's model (eval mode), its decoded metadata and its raw metadata strings. */
export interface LoadedModel {
  model: Module;
  meta: CheckpointMetadata;
  raw: Record<string, string>;
}

/** Builds the checkpoint's model by name and config and loads its weights (in eval mode). */
export async function loadModel(path: string): Promise<LoadedModel> {
  const file = await readCheckpoint(path);
  const model = createModel(file.meta.model, file.meta.config);
  try {
    loadInto(model, file, path);
    await checkFinite(model, path);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model: model.eval(), meta: file.meta, raw: file.raw };
}

/**
 * Refuses weights holding NaN or infinity (a run that diverged before the NaN checks, a file
 * edited by hand): evaluating them gives "loss NaN" and barriers at t = NaN instead of an error.
 * One reduction per tensor on the GPU and one read (train.ts firstNonFinite).
 */
export async function checkFinite(model: Module, where: string): Promise<void> {
  const bad = await firstNonFinite(model);
  if (bad) throw new CheckpointError(`${where}: tensor '${bad}' holds NaN or infinite values`);
}

/** Loads the momentum buffers of `dir`'s optimizer file for epoch `epoch` into `optimizer`. */
export async function loadOptimizerState(dir: string, epoch: number, optimizer: SGD): Promise<void> {
  const path = join(dir, optimizerFile(epoch));
  const file = await loadSafetensors(path);
  if (file.metadata.epoch !== String(epoch)) {
    throw new CheckpointError(`${path}: metadata says epoch ${file.metadata.epoch ?? '(none)'}, the checkpoint is at epoch ${epoch}`);
  }
  const gpu: Map<string, Tensor> = toGpuTensors(file.tensors, path);
  try {
    optimizer.loadStateDict(gpu);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  } finally {
    for (const t of gpu.values()) t.dispose();
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
