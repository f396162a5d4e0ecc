// A curve on disk: DIR/curve.safetensors holds the bends only (`bend{k}.{parameter}`, PyTorch
// state-dict names under a bend prefix) and, in its metadata, everything needed to rebuild the
// curve: the endpoint checkpoints (path and SHA-256 of each file), the permutation applied to B
// (the curve connects A to P(B)), the curve kind and number of control points, the model and
// its configuration, and the training state (options, epoch, dropout generator offsets). The
// endpoints are not copied: a curve file is small, and an endpoint file that changed since the
// curve was trained is refused rather than silently giving another curve.
//
// The file is written as `train` writes its checkpoints (checkpoint/model.ts): the optimizer
// companion of the same epoch first, then the curve file, each atomically, so a run killed at any
// moment leaves a consistent pair to --resume from.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { type GeneratorState, loadModel, pairDifferences, type CheckpointMetadata } from '../nn/checkpoint/model.js';
import { CheckpointError, loadSafetensors, saveSafetensors, toGpuTensors, type CpuTensor } from '../nn/checkpoint/safetensors.js';
import { createModel, type ModelConfig, type ModelName } from '../nn/models/index.js';
import { firstNonFinite } from '../nn/train.js';
import type { Module, StateDict } from '../nn/module.js';
import { Curve, CURVE_KINDS, type CurveKind } from './curve.js';
import { disposeStateDict, permuteStateDict, type Permutations } from './permute.js';
import { permutationSpec } from './specs.js';

export const CURVE_FILE = 'curve.safetensors';
/** The metadata value that marks a curve file (a model checkpoint has none). */
const CURVE_FORMAT = 'neuralign-curve';

/** An endpoint checkpoint as a curve file records it. */
export interface EndpointRef {
  /** Relative to the curve file's folder when it was written inside the same tree, else absolute. */
  path: string;
  sha256: string;
  seed: number;
}

/** How B was permuted before it became the curve's t = 1 endpoint (null: B as trained). */
export interface CurvePermutation {
  method: string;
  groups: Record<string, number[]>;
}

export interface CurveMetadata {
  curve: CurveKind;
  /** Control points, endpoints included. */
  points: number;
  model: ModelName;
  config: ModelConfig;
  dataset: string;
  endpoints: { a: EndpointRef; b: EndpointRef };
  permutation: CurvePermutation | null;
  /** Epochs of curve training completed. */
  epoch: number;
  /** The curve run's options (JSON object). */
  training: Record<string, unknown>;
  generators: GeneratorState[];
  metrics?: Record<string, number | null>;
}

/** SHA-256 of a file's bytes, hex. */
export async function fileSha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** How a curve file at `curvePath` refers to `endpoint`: relative to its folder when possible. */
export function endpointPath(curvePath: string, endpoint: string): string {
  const rel = relative(dirname(resolve(curvePath)), resolve(endpoint));
  return rel.startsWith('..') && isAbsolute(endpoint) ? resolve(endpoint) : rel;
}

/** The endpoint file a curve file refers to, as a path usable from the working directory. */
export function resolveEndpoint(curvePath: string, ref: EndpointRef): string {
  return isAbsolute(ref.path) ? ref.path : resolve(dirname(resolve(curvePath)), ref.path);
}

function encode(meta: CurveMetadata): Record<string, string> {
  const out: Record<string, string> = {
    format: 'pt',
    neuralign: CURVE_FORMAT,
    curve: meta.curve,
    points: String(meta.points),
    model: meta.model,
    config: JSON.stringify(meta.config),
    dataset: meta.dataset,
    endpoints: JSON.stringify(meta.endpoints),
    permutation: JSON.stringify(meta.permutation),
    epoch: String(meta.epoch),
    training: JSON.stringify(meta.training),
    generators: JSON.stringify(meta.generators),
  };
  if (meta.metrics) out.metrics = JSON.stringify(meta.metrics);
  return out;
}

function decode(raw: Record<string, string>, where: string): CurveMetadata {
  const fail = (what: string): never => {
    throw new CheckpointError(`${where}: ${what}`);
  };
  if (raw.neuralign !== CURVE_FORMAT) fail(raw.model !== undefined ? 'is a model checkpoint, not a curve file (`neuralign curve` writes curve files)' : 'not a neuralign curve file');
  const json = (key: string): unknown => {
    if (raw[key] === undefined) fail(`its metadata has no '${key}'`);
    try {
      return JSON.parse(raw[key]!);
    } catch {
      return fail(`metadata '${key}' is not valid JSON`);
    }
  };
  const curve = raw.curve as CurveKind;
  if (!CURVE_KINDS.includes(curve)) fail(`unknown curve kind '${raw.curve}'`);
  const points = Number(raw.points);
  if (!(Number.isInteger(points) && points >= 2)) fail(`metadata 'points' is ${JSON.stringify(raw.points)}`);
  const epoch = Number(raw.epoch);
  if (!(Number.isSafeInteger(epoch) && epoch >= 0)) fail(`metadata 'epoch' is ${JSON.stringify(raw.epoch)}`);
  const endpoints = json('endpoints') as CurveMetadata['endpoints'];
  for (const side of ['a', 'b'] as const) {
    const e = endpoints?.[side];
    if (!e || typeof e.path !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) fail(`metadata 'endpoints' lacks endpoint ${side.toUpperCase()}'s path or SHA-256`);
  }
  const meta: CurveMetadata = {
    curve,
    points,
    model: raw.model as ModelName,
    config: json('config') as ModelConfig,
    dataset: raw.dataset ?? fail("its metadata has no 'dataset'"),
    endpoints,
    permutation: json('permutation') as CurvePermutation | null,
    epoch,
    training: json('training') as Record<string, unknown>,
    generators: json('generators') as GeneratorState[],
  };
  if (raw.metrics !== undefined) meta.metrics = json('metrics') as Record<string, number | null>;
  return meta;
}

export async function saveCurve(path: string, curve: Curve, meta: CurveMetadata): Promise<void> {
  await saveSafetensors(path, curve.bendStateDict(), encode(meta));
}

export interface CurveFile {
  meta: CurveMetadata;
  tensors: Map<string, CpuTensor>;
}

export async function readCurveFile(path: string): Promise<CurveFile> {
  const file = await loadSafetensors(path);
  return { meta: decode(file.metadata, path), tensors: file.tensors };
}

/** Copies a curve file's bends into `curve` (CheckpointError naming the file when they do not fit). */
export function loadBendsFrom(curve: Curve, file: CurveFile, where: string): void {
  const gpu = toGpuTensors(file.tensors, where);
  try {
    curve.loadBends(gpu, where);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  } finally {
    for (const t of gpu.values()) t.dispose();
  }
}

/** Refuses bends holding NaN or infinity, naming the file and the tensor (as loadModel refuses such endpoints). */
export async function checkBendsFinite(curve: Curve, where: string): Promise<void> {
  const bad = await firstNonFinite(curve.bendStateDict());
  if (bad) throw new CheckpointError(`${where}: tensor '${bad}' holds NaN or infinite values`);
}

/** A loaded endpoint pair: A, B, and B's state permuted as the curve records (or B's own). */
export interface Endpoints {
  a: { path: string; model: Module; meta: CheckpointMetadata; sha256: string };
  b: { path: string; model: Module; meta: CheckpointMetadata; sha256: string };
  /** theta_B as the curve sees it: P(B)'s state (kept tensors the caller disposes), or B's own. */
  stateB: StateDict;
  permuted: boolean;
}

/** Throws unless A and B are one architecture at one size on one data set. */
export function checkEndpointPair(a: { path: string; meta: CheckpointMetadata }, b: { path: string; meta: CheckpointMetadata }): void {
  const diffs = pairDifferences(a.meta, b.meta);
  if (diffs.length) throw new Error(`${a.path} and ${b.path} cannot be connected: they differ in ${diffs.join(', ')}`);
}

/**
 * Loads two endpoint checkpoints, checks they form a pair (and, with `expected`, that the files are
 * byte for byte the ones a curve was trained on), and applies `permutation` to B.
 */
export async function loadEndpoints(pathA: string, pathB: string, permutation: Permutations | null, expected?: { a: string; b: string }): Promise<Endpoints> {
  const shas = await Promise.all([pathA, pathB].map(async (p) => {
    try {
      return await fileSha256(p);
    } catch (e) {
      throw new CheckpointError(`${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  }));
  if (expected) {
    (['a', 'b'] as const).forEach((side, i) => {
      if (shas[i] !== expected[side]) {
        throw new CheckpointError(`endpoint ${side.toUpperCase()} ${[pathA, pathB][i]} changed since the curve was trained (SHA-256 ${shas[i]!.slice(0, 12)}..., the curve recorded ${expected[side].slice(0, 12)}...)`);
      }
    });
  }
  const la = await loadModel(pathA);
  try {
    const lb = await loadModel(pathB);
    try {
      const a = { path: pathA, model: la.model, meta: la.meta, sha256: shas[0]! };
      const b = { path: pathB, model: lb.model, meta: lb.meta, sha256: shas[1]! };
      checkEndpointPair(a, b);
      const stateB = permutation ? permuteStateDict(lb.model.stateDict(), permutationSpec(lb.model), permutation) : lb.model.stateDict();
      return { a, b, stateB, permuted: !!permutation };
    } catch (e) {
      lb.model.dispose();
      throw e;
    }
  } catch (e) {
    la.model.dispose();
    throw e;
  }
}

export function disposeEndpoints(e: Endpoints): void {
  if (e.permuted) disposeStateDict(e.stateB);
  e.a.model.dispose();
  e.b.model.dispose();
}

export function permutationsFromJson(p: CurvePermutation | null): Permutations | null {
  return p ? new Map(Object.entries(p.groups).map(([g, v]) => [g, Int32Array.from(v)])) : null;
}

export function permutationsToJson(method: string, p: Permutations | null): CurvePermutation | null {
  return p ? { method, groups: Object.fromEntries([...p].map(([g, v]) => [g, [...v]])) } : null;
}

/** A curve rebuilt from its file: the endpoints (checked by hash), the curve, and the file's metadata. */
export interface OpenCurve {
  path: string;
  meta: CurveMetadata;
  curve: Curve;
  endpoints: Endpoints;
  /** A network of the architecture to run points of the curve in (A's weights until loaded). */
  model: Module;
}

export async function openCurve(path: string): Promise<OpenCurve> {
  const file = await readCurveFile(path);
  const { meta } = file;
  const endpoints = await loadEndpoints(resolveEndpoint(path, meta.endpoints.a), resolveEndpoint(path, meta.endpoints.b), permutationsFromJson(meta.permutation), {
    a: meta.endpoints.a.sha256,
    b: meta.endpoints.b.sha256,
  });
  let model: Module | undefined;
  let curve: Curve | undefined;
  try {
    model = createModel(meta.model, meta.config);
    model.loadStateDict(endpoints.a.model.stateDict());
    model.eval();
    curve = new Curve(model, endpoints.a.model.stateDict(), endpoints.stateB, { kind: meta.curve, points: meta.points });
    loadBendsFrom(curve, file, path);
    await checkBendsFinite(curve, path);
    return { path, meta, curve, endpoints, model };
  } catch (e) {
    curve?.dispose();
    model?.dispose();
    disposeEndpoints(endpoints);
    throw e;
  }
}

export function closeCurve(c: OpenCurve): void {
  c.curve.dispose();
  c.model.dispose();
  disposeEndpoints(c.endpoints);
}
