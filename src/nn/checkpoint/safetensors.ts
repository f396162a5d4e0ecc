// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), readable by
// PyTorch's `safetensors.torch.load_file`:
//
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   UTF-8 JSON: {"__metadata__": {string: string},
//                          name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
//             padded with spaces so that N is a multiple of 8 (the data then starts 8-aligned)
//   the data  each tensor's little-endian elements, row-major; offsets count from the byte after
//             the header, and the tensors tile the data exactly: contiguous from 0, no gaps, no
//             overlaps, the last ending at the end of the file.
//
// Loading validates all of that (the reference implementation rejects the same files) and every
// failure is one CheckpointError line naming the file and the tensor.
//
// Int64: PyTorch's BatchNorm `num_batches_tracked` buffers are int64. On the CPU side an I64 tensor
// is a BigInt64Array; the engine has no 64-bit integers, so `toGpuTensors` converts I64 to i32 with
// a range check, and `saveSafetensors` writes i32 tensors named `*num_batches_tracked` as I64 (the
// `int64` option changes which), so a state dict round-trips through PyTorch with its own dtypes.
import { endianness } from 'node:os';
import { readFile } from 'node:fs/promises';
import { Tensor, tensor } from '../../engine/index.js';
import { writeFileAtomic, type AtomicWriteHooks } from './atomic.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export type SafetensorsDType = 'F32' | 'I32' | 'U32' | 'I64';

export interface CpuTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Int32Array | Uint32Array | BigInt64Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** In file order (by data offset). */
  tensors: Map<string, CpuTensor>;
}

const ELEMENT_BYTES: Record<SafetensorsDType, number> = { F32: 4, I32: 4, U32: 4, I64: 8 };
const METADATA = '__metadata__';

// Typed arrays are views in the host's byte order; the format is little-endian.
if (endianness() !== 'LE') throw new Error('neuralign checkpoints need a little-endian host');

// ---------------------------------------------------------------------------------------------
// Writing

/** The file's bytes as chunks: length prefix and header, then each tensor's data. */
export function serializeSafetensors(tensors: ReadonlyMap<string, CpuTensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const entries: string[] = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new CheckpointError(`metadata '${key}' is a ${typeof value}, safetensors metadata values are strings`);
  }
  if (Object.keys(metadata).length > 0) entries.push(`${JSON.stringify(METADATA)}:${JSON.stringify(metadata)}`);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  // Built by hand, not with JSON.stringify of one object: that would move integer-like names first.
  for (const [name, t] of tensors) {
    if (name === METADATA) throw new CheckpointError(`a tensor cannot be named '${METADATA}'`);
    const numel = t.shape.reduce((p, d) => p * d, 1);
    if (t.data.length !== numel || !(t.dtype in ELEMENT_BYTES)) {
      throw new CheckpointError(`tensor '${name}': ${t.data.length} values of ${t.dtype} for shape [${t.shape.join(', ')}]`);
    }
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    entries.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return [head, ...chunks];
}

export interface SaveOptions {
  /** Which i32 tensors to store as I64; default: names ending in `num_batches_tracked`. */
  int64?: (name: string) => boolean;
  /** Test hooks of the atomic write. */
  hooks?: AtomicWriteHooks;
}

/** Writes CPU tensors to `path` atomically (temporary file, fsync, rename, folder fsync). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, CpuTensor>,
  metadata: Record<string, string> = {},
  hooks: AtomicWriteHooks = {},
): Promise<void> {
  const chunks = serializeSafetensors(tensors, metadata);
  try {
    await writeFileAtomic(path, chunks, hooks);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${path}: cannot write (${oneLine(e)})`);
  }
}

/**
 * Reads GPU tensors back (all at once) and writes them to `path` atomically: a run killed at any
 * moment leaves the previous file at `path` whole.
 */
export async function saveSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor>,
  metadata: Record<string, string> = {},
  opts: SaveOptions = {},
): Promise<void> {
  const int64 = opts.int64 ?? ((name: string) => name.endsWith('num_batches_tracked'));
  const names = [...tensors.keys()];
  const arrays = await Promise.all(names.map((name) => readBack(tensors.get(name)!)));
  const cpu = new Map<string, CpuTensor>();
  names.forEach((name, i) => {
    const t = tensors.get(name)!;
    const data = arrays[i]!;
    const shape = [...t.shape];
    if (t.dtype === 'i32' && int64(name)) cpu.set(name, { dtype: 'I64', shape, data: BigInt64Array.from(data as Int32Array, (v) => BigInt(v)) });
    else cpu.set(name, { dtype: t.dtype === 'f32' ? 'F32' : t.dtype === 'i32' ? 'I32' : 'U32', shape, data });
  });
  await writeSafetensors(path, cpu, metadata, opts.hooks);
}

/** A tensor's values; an empty tensor needs no read-back (a 0-byte mapAsync fails on some backends). */
function readBack(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
  if (t.size > 0) return t.toArray();
  return Promise.resolve(t.dtype === 'f32' ? new Float32Array(0) : t.dtype === 'i32' ? new Int32Array(0) : new Uint32Array(0));
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads and validates a safetensors file (CPU side). */
export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(`${path}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? oneLine(e)})`}`);
  }
  return parseSafetensors(bytes, path);
}

/** Parses and validates safetensors bytes; `where` names the file in errors. */
export function parseSafetensors(bytes: Uint8Array, where: string): SafetensorsFile {
  const fail = (what: string): never => {
    throw new CheckpointError(`${where}: ${what}`);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for a safetensors file (8-byte header length missing)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(bytes.length - 8)) {
    fail(`header length ${declared} exceeds the ${bytes.length - 8} bytes after the length field (truncated or not a safetensors file)`);
  }
  const n = Number(declared);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${oneLine(e)})`);
  }
  if (!isObject(header)) fail(`header is not a JSON object`);
  const dataStart = 8 + n;
  const dataBytes = bytes.length - dataStart;

  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA) {
      if (!isObject(info) || !Object.values(info).every((v) => typeof v === 'string')) fail(`${METADATA} is not an object of strings`);
      metadata = info as Record<string, string>;
      continue;
    }
    const bad = (what: string): never => fail(`tensor '${name}': ${what}`);
    if (!isObject(info)) bad('its entry is not an object');
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string') bad('missing dtype');
    if (!Object.hasOwn(ELEMENT_BYTES, dtype as string)) bad(`unsupported dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(ELEMENT_BYTES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) bad(`shape ${short(shape)} is not a list of non-negative integers`);
    if (offsets === undefined) bad('missing data_offsets');
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
      bad(`data_offsets ${short(offsets)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    const dims = shape as number[];
    const need = dims.reduce((p, d) => p * d, 1) * ELEMENT_BYTES[dtype as SafetensorsDType];
    if (end - begin !== need) bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ${dtype} [${dims.join(', ')}] needs ${need}`);
    if (end > dataBytes) bad(`data_offsets [${begin}, ${end}] run past the ${dataBytes} data bytes (truncated file?)`);
    entries.push({ name, dtype: dtype as SafetensorsDType, shape: dims, begin, end });
  }

  // The tensors must tile the data: sorted by offset, each begins where the previous ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous = '';
  for (const e of entries) {
    if (e.begin < at) fail(`tensor '${e.name}' (data_offsets [${e.begin}, ${e.end}]) overlaps tensor '${previous}'`);
    if (e.begin > at) fail(`tensor '${e.name}' begins at byte ${e.begin} of the data, leaving a gap after byte ${at}`);
    at = e.end;
    previous = e.name;
  }
  if (at !== dataBytes) fail(`${dataBytes - at} bytes after the last tensor's data (the tensors must end at the end of the file)`);

  const tensors = new Map<string, CpuTensor>();
  for (const e of entries) {
    // A copy: the data of a foreign file need not be aligned for a typed-array view.
    const raw = new Uint8Array(e.end - e.begin);
    raw.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typedArrayOf(e.dtype, raw.buffer) });
  }
  return { metadata, tensors };
}

/**
 * GPU tensors for a file's CPU tensors (e.g. for Module.loadStateDict); the caller owns them.
 * I64 becomes i32, and a value outside the int32 range is an error naming the tensor.
 */
export function toGpuTensors(tensors: ReadonlyMap<string, CpuTensor>, where = 'checkpoint'): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) {
    if (t.dtype === 'I64') {
      const values = t.data as BigInt64Array;
      const narrow = new Int32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v < -2147483648n || v > 2147483647n) {
          for (const made of out.values()) made.dispose();
          throw new CheckpointError(`${where}: tensor '${name}': int64 value ${v} does not fit the engine's int32`);
        }
        narrow[i] = Number(v);
      }
      out.set(name, tensor(narrow, t.shape, 'i32'));
    } else {
      out.set(name, tensor(t.data as Float32Array | Int32Array | Uint32Array, t.shape, t.dtype === 'F32' ? 'f32' : t.dtype === 'I32' ? 'i32' : 'u32'));
    }
  }
  return out;
}

function typedArrayOf(dtype: SafetensorsDType, buffer: ArrayBuffer): CpuTensor['data'] {
  switch (dtype) {
    case 'F32':
      return new Float32Array(buffer);
    case 'I32':
      return new Int32Array(buffer);
    case 'U32':
      return new Uint32Array(buffer);
    case 'I64':
      return new BigInt64Array(buffer);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A value for an error message: JSON, cut to 60 characters. */
function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
}
