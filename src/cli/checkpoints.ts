// What the commands that read checkpoints share: opening one into a model (one loader,
// nn/checkpoint/model.ts's loadModel), refusing a pair that cannot be aligned or interpolated,
// and loading the data set a checkpoint was trained on.
import { loadModel, pairDifferences, type CheckpointMetadata, type LoadedModel } from '../nn/checkpoint/model.js';
import { DataError, loadDataset, type ImageDataset, type Split } from '../nn/data/index.js';

/** A checkpoint's model (eval mode), its decoded metadata and its raw metadata strings, and its path. */
export interface OpenCheckpoint extends LoadedModel {
  path: string;
}

export async function openCheckpoint(path: string): Promise<OpenCheckpoint> {
  return { path, ...(await loadModel(path)) };
}

/** One line naming the architecture, its size and its data set, for reports and errors. */
export function describeCheckpoint(meta: CheckpointMetadata): string {
  const c = meta.config;
  return `${meta.model} width ${c.width}, ${c.inChannels} channel(s), ${c.numClasses} classes, ${meta.dataset}`;
}

/**
 * Throws unless A and B are the same architecture at the same size on the same data set (their
 * initialization seeds may differ: that is the point), naming both and what differs.
 */
export function checkSamePair(a: OpenCheckpoint, b: OpenCheckpoint, verb: string): void {
  const diffs = pairDifferences(a.meta, b.meta);
  if (diffs.length) {
    throw new Error(`cannot ${verb} ${a.path} (${describeCheckpoint(a.meta)}) and ${b.path} (${describeCheckpoint(b.meta)}): they differ in ${diffs.join(', ')}`);
  }
}

/**
 * The checkpoint's data set split, from `dataDir` or the checkpoint's training data folder,
 * checked against the model's input channels and classes.
 */
export function checkpointData(meta: CheckpointMetadata, split: Split, dataDir: string | undefined, dataset = meta.dataset): ImageDataset {
  const training = meta.training as { dataDir?: string };
  // The training folder only fits the training data set (eval --dataset may name another one).
  const data = loadDataset(dataset, split, dataDir ?? (dataset === meta.dataset ? training.dataDir : undefined));
  if (data.shape[1] !== meta.config.inChannels || data.classes !== meta.config.numClasses) {
    throw new DataError(`${data.name}: ${data.shape[1]}-channel images of ${data.classes} classes, the checkpoint's ${meta.model} takes ${meta.config.inChannels} channels and ${meta.config.numClasses} classes`);
  }
  return data;
}
