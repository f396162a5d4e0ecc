// The IDX format (MNIST, Fashion-MNIST) in memory, with no file system: parsing bytes and making
// a data set of an images file and a labels file. idx.ts reads the files in Node; the live page
// (src/web/live.ts) fetches the subset that the build writes into dist/web/data/.
//
// Format: magic 00 00 TT DD (TT the element type, 08 = unsigned byte; DD the number of
// dimensions), then DD big-endian u32 sizes, then the elements row-major. Images files are
// [N, 28, 28], labels files [N]. Only unsigned bytes are read: the only type these data sets use.
import { checkLabels, type ImageDataset } from './dataset.js';
import { DataError } from './errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = { 0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };

/** Parses IDX bytes (already gunzipped); `where` names the file in errors. */
export function parseIdx(bytes: Uint8Array, where: string): IdxArray {
  if (bytes.length < 4) throw new DataError(`${where}: ${bytes.length} bytes is too short for an IDX header (truncated file?)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DataError(`${where}: not an IDX file (magic bytes ${magic}, expected 00 00 08 NN)`);
  }
  const type = bytes[2]!;
  if (type !== 0x08) {
    const name = TYPE_NAMES[type] ?? 'unknown';
    throw new DataError(`${where}: IDX element type 0x${type.toString(16).padStart(2, '0')} (${name}) is not supported, expected 0x08 (unsigned byte)`);
  }
  const rank = bytes[3]!;
  if (rank === 0) throw new DataError(`${where}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw new DataError(`${where}: truncated IDX header (${bytes.length} bytes, the ${rank}-dimensional header needs ${headerBytes})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const expected = dims.reduce((p, d) => p * d, 1);
  const found = bytes.length - headerBytes;
  if (found < expected) {
    throw new DataError(`${where}: truncated: [${dims.join(', ')}] needs ${expected} data bytes, the file has ${found}`);
  }
  if (found > expected) {
    throw new DataError(`${where}: ${found - expected} unexpected bytes after the [${dims.join(', ')}] data (wrong header sizes?)`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

// Per-channel statistics of x / 255 over the training images. MNIST's are torchvision's usual
// (0.1307, 0.3081); Fashion-MNIST's (0.2860, 0.3530) are computed the same way. (The paper's code
// feeds MNIST unnormalized; pass mean 0, std 1 to the loader to match it.)
export const MNIST_STATS = {
  'fashion-mnist': { mean: [0.286], std: [0.353] },
  mnist: { mean: [0.1307], std: [0.3081] },
};

/**
 * The data set of parsed `images` [N, 28, 28] and `labels` [N] (named in errors by the paths in
 * `where`), labels checked, with the data set's normalization statistics.
 */
export function mnistLikeDataset(name: 'fashion-mnist' | 'mnist', split: 'train' | 'test', images: IdxArray, labels: IdxArray, where: { images: string; labels: string }): ImageDataset {
  if (images.dims.length !== 3) {
    throw new DataError(`${where.images}: expected images of 3 dimensions [N, H, W], the header says [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) {
    throw new DataError(`${where.labels}: expected labels of 1 dimension [N], the header says [${labels.dims.join(', ')}]`);
  }
  const [n, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) throw new DataError(`${where.labels}: ${labels.dims[0]} labels for ${n} images in ${where.images}`);
  const classes = 10;
  const labels32 = Int32Array.from(labels.data);
  checkLabels(labels32, classes, where.labels);
  return { name: `${name}-${split}`, shape: [n, 1, h, w], images: images.data, labels: labels32, classes, ...MNIST_STATS[name] };
}
