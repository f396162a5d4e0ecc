// Safetensors checkpoints: GPU round trips (f32, i32, u32, int64 buffers, empty and scalar
// tensors), byte-for-byte agreement with the reference Python writer, strict validation with
// one-line CheckpointErrors (hand-made bad headers, random bytes, every truncation, byte flips,
// huge header lengths), and atomic replacement, including a writer process killed mid-write.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { writeFileAtomic } from '../../src/nn/checkpoint/atomic.js';
import {
  CheckpointError,
  loadSafetensors,
  parseSafetensors,
  saveSafetensors,
  serializeSafetensors,
  toGpuTensors,
  writeSafetensors,
  type CpuTensor,
} from '../../src/nn/checkpoint/index.js';
import { TEST_SEED, rng, setupEngine } from '../helpers.js';

// Child mode for the kill test: this same file, run as a process, rewrites the file at the given
// path with a large payload until its parent kills it.
const CHILD_TARGET = process.env.NEURALIGN_TEST_ATOMIC_CHILD;
if (CHILD_TARGET) {
  process.stdout.write('ready\n');
  for (;;) await writeFileAtomic(CHILD_TARGET, rewriteChunks());
}

/** The child's payload: 32 chunks of 1 MiB, chunk i filled with i + 1. */
function rewriteChunks(): Uint8Array[] {
  return Array.from({ length: 32 }, (_, i) => new Uint8Array(1 << 20).fill(i + 1));
}

const test = suite('safetensors');
const rand = rng(TEST_SEED);
let dir = '';
test.before(async () => {
  await setupEngine();
  dir = mkdtempSync(join(tmpdir(), 'neuralign-st-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** fn must throw a one-line CheckpointError containing every `parts` string. */
function expectCheckpointError(fn: () => unknown, ...parts: string[]): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof CheckpointError)) assert.unreachable(`expected a CheckpointError, got ${(e as Error)?.stack ?? e}`);
    const msg = (e as Error).message;
    assert.not.match(msg, '\n', 'one line');
    for (const p of parts) assert.ok(msg.includes(p), `'${msg}' should mention '${p}'`);
    return;
  }
  assert.unreachable(`expected a CheckpointError mentioning ${parts.join(', ')}`);
}

async function expectCheckpointErrorAsync(fn: () => Promise<unknown>, ...parts: string[]): Promise<void> {
  let error: unknown = null;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  expectCheckpointError(() => {
    if (error) throw error;
  }, ...parts);
}

function randomFloats(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rand() * 4 - 2);
}

/** A small state dict on the GPU covering every dtype and the edge shapes. */
function makeState(): Map<string, E.Tensor> {
  return new Map<string, E.Tensor>([
    ['features.0.weight', E.tensor(randomFloats(3 * 5 * 7), [3, 5, 7])],
    ['features.0.bias', E.tensor(randomFloats(3), [3])],
    ['bn.running_mean', E.tensor(randomFloats(5), [5])],
    ['bn.num_batches_tracked', E.tensor(Int32Array.of(12345), [], 'i32')],
    ['labels', E.tensor(Int32Array.from({ length: 9 }, () => Math.floor(rand() * 2e9) - 1e9), [9], 'i32')],
    ['perm', E.tensor(Uint32Array.from({ length: 6 }, () => Math.floor(rand() * 2 ** 32)), [2, 3], 'u32')],
    ['empty', E.tensor(new Float32Array(0), [2, 0, 3])],
    ['scalar', E.tensor(Float32Array.of(Math.PI), [])],
    ['5', E.tensor(Float32Array.of(1, 2), [2])], // an integer-like name keeps its place
  ]);
}

async function assertSameTensors(file: Map<string, CpuTensor>, state: Map<string, E.Tensor>) {
  assert.equal([...file.keys()], [...state.keys()], 'names, in order');
  for (const [name, t] of state) {
    const got = file.get(name)!;
    assert.equal(got.shape, [...t.shape], `${name}: shape`);
    const want = t.size ? await t.toArray() : []; // a 0-byte read-back fails on Dawn's GL backend
    if (name.endsWith('num_batches_tracked')) {
      assert.is(got.dtype, 'I64');
      assert.equal([...(got.data as BigInt64Array)], [...want].map(BigInt));
    } else {
      assert.is(got.dtype, { f32: 'F32', i32: 'I32', u32: 'U32' }[t.dtype]);
      assert.equal([...got.data], [...want], `${name}: values`);
    }
  }
}

test('GPU round trip: every dtype, int64 buffers, empty and scalar tensors, metadata', async () => {
  const state = makeState();
  const path = join(dir, 'model.safetensors');
  const metadata = { format: 'pt', arch: 'tinyten', epoch: '250', note: 'ünïcode ✓' };
  await saveSafetensors(path, state, metadata);
  const loaded = await loadSafetensors(path);
  assert.equal(loaded.metadata, metadata);
  await assertSameTensors(loaded.tensors, state);
  // Back to the GPU: I64 becomes i32, everything else keeps its dtype and bits.
  const gpu = toGpuTensors(loaded.tensors, path);
  for (const [name, t] of state) {
    const g = gpu.get(name)!;
    assert.is(g.dtype, t.dtype, name);
    assert.equal(g.shape, t.shape, name);
    if (t.size) assert.equal([...(await g.toArray())], [...(await t.toArray())], name);
  }
  for (const t of [...state.values(), ...gpu.values()]) t.dispose();
  // No metadata: no __metadata__ entry, still a valid file.
  await saveSafetensors(path, new Map([['w', E.tensor(Float32Array.of(1, 2, 3), [3])]]));
  const bare = await loadSafetensors(path);
  assert.equal(bare.metadata, {});
  assert.not.ok(readFileSync(path).toString('latin1').includes('__metadata__'));
});

test('int64 values outside int32 are an error on upload, naming the tensor', () => {
  const tensors = new Map<string, CpuTensor>([['bn.num_batches_tracked', { dtype: 'I64', shape: [], data: BigInt64Array.of(2n ** 40n) }]]);
  expectCheckpointError(() => toGpuTensors(tensors, 'x.safetensors'), 'x.safetensors', 'bn.num_batches_tracked', '1099511627776', 'int32');
});

test('layout: the bytes the reference Python writer (safetensors 0.8) produces', () => {
  // safetensors.numpy.save({'b.weight': [[1.5, -2], [3, 4.25]] f32, 'a': arange(3) i32,
  //   'n': 7 i64 (shape []), 'e': zeros((2, 0)) f32}, metadata={'format': 'pt', 'epoch': '3'});
  // it orders tensors by dtype alignment, then name: n, b.weight, e, a.
  const golden =
    '10010000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074222c2265706f6368223a2233227d2c226e223a7b2264' +
    '74797065223a22493634222c227368617065223a5b5d2c22646174615f6f666673657473223a5b302c385d7d2c22622e776569676874223a7b22' +
    '6474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b382c32345d7d2c2265223a7b226474' +
    '797065223a22463332222c227368617065223a5b322c305d2c22646174615f6f666673657473223a5b32342c32345d7d2c2261223a7b22647479' +
    '7065223a22493332222c227368617065223a5b335d2c22646174615f6f666673657473223a5b32342c33365d7d7d2007000000000000000000c0' +
    '3f000000c00000404000008840000000000100000002000000';
  const tensors = new Map<string, CpuTensor>([
    ['n', { dtype: 'I64', shape: [], data: BigInt64Array.of(7n) }],
    ['b.weight', { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1.5, -2, 3, 4.25) }],
    ['e', { dtype: 'F32', shape: [2, 0], data: new Float32Array(0) }],
    ['a', { dtype: 'I32', shape: [3], data: Int32Array.of(0, 1, 2) }],
  ]);
  const bytes = Buffer.concat(serializeSafetensors(tensors, { format: 'pt', epoch: '3' }));
  assert.is(bytes.toString('hex'), golden);
  const parsed = parseSafetensors(Buffer.from(golden, 'hex'), 'golden');
  assert.equal([...parsed.tensors.keys()], ['n', 'b.weight', 'e', 'a']);
  assert.equal([...parsed.tensors.get('b.weight')!.data], [1.5, -2, 3, 4.25]);
});

test('layout: header a multiple of 8 and space-padded, offsets contiguous from 0 to the end', async () => {
  const state = makeState();
  const path = join(dir, 'layout.safetensors');
  await saveSafetensors(path, state, { a: 'b' });
  for (const t of state.values()) t.dispose();
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.is(n % 8, 0, 'the data starts 8-byte aligned');
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  assert.is(text[0], '{');
  assert.ok(/^[^]*\} *$/.test(text), 'padding is spaces after the JSON');
  const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
  let at = 0;
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || name === '5') continue; // JSON.parse moves '5' first
    assert.is(info.data_offsets[0], at, `${name} starts where the previous ended`);
    at = info.data_offsets[1];
  }
  assert.is(header['5']!.data_offsets[0], at, "'5' comes last, as written");
  assert.is(header['5']!.data_offsets[1] + 8 + n, bytes.length, 'the last tensor ends the file');
});

/** A valid file's bytes with the header text replaced (length recomputed, data appended). */
function withHeader(header: string, data = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(header, 'utf8');
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('bad headers: each a one-line error naming the file and the tensor', () => {
  const f = 'bad.safetensors';
  const d16 = new Uint8Array(16);
  const cases: [Uint8Array, ...string[]][] = [
    [new Uint8Array(5), 'too short'],
    [withHeader('not json', d16), 'not valid UTF-8 JSON'],
    [withHeader('[1, 2]'), 'not a JSON object'],
    [withHeader('null'), 'not a JSON object'],
    [withHeader('42'), 'not a JSON object'],
    [withHeader(''), 'not valid UTF-8 JSON'],
    [withHeader('{"w": 3}'), "tensor 'w'", 'not an object'],
    [withHeader('{"w": {"dtype": "F32", "shape": [4]}}', d16), "tensor 'w'", 'missing data_offsets'],
    [withHeader('{"w": {"shape": [4], "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'missing dtype'],
    [withHeader('{"w": {"dtype": "F16", "shape": [8], "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'unsupported dtype "F16"', 'F32, I32, U32, I64'],
    [withHeader('{"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'shape [-4]'],
    [withHeader('{"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'shape'],
    [withHeader('{"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'shape'],
    [withHeader('{"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}', d16), "tensor 'w'", 'data_offsets [16,0]'],
    [withHeader('{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0]}}', d16), "tensor 'w'", 'data_offsets'],
    [withHeader('{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'hold 16 bytes', 'needs 12'],
    [withHeader('{"w": {"dtype": "I64", "shape": [4], "data_offsets": [0, 32]}}', d16), "tensor 'w'", 'run past the 16 data bytes'],
    [withHeader('{"w": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 16]}}', d16), "tensor 'w'", 'shape'],
    [withHeader('{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', d16), "tensor 'b'", "overlaps tensor 'a'"],
    [withHeader('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}', d16), "tensor 'b'", 'gap after byte 8'],
    [withHeader('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}', d16), "tensor 'a'", 'begins at byte 4'],
    [withHeader('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', d16), '8 bytes after the last tensor'],
    [withHeader('{"__metadata__": {"epoch": 3}}'), '__metadata__', 'strings'],
    [withHeader('{"__metadata__": [1]}'), '__metadata__'],
  ];
  for (const [bytes, ...parts] of cases) expectCheckpointError(() => parseSafetensors(bytes, f), f, ...parts);
  // Invalid UTF-8 in the header.
  const badUtf8 = withHeader('{"w" }');
  badUtf8[10] = 0xff;
  expectCheckpointError(() => parseSafetensors(badUtf8, f), f, 'UTF-8');
});

test('header lengths beyond the file: 2^60, 2^64 - 1, one byte too many', () => {
  const good = Buffer.concat(serializeSafetensors(new Map([['w', { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }]])));
  for (const n of [2n ** 60n, 2n ** 64n - 1n, 2n ** 53n + 1n, BigInt(good.length - 7)]) {
    const bytes = Uint8Array.from(good);
    new DataView(bytes.buffer).setBigUint64(0, n, true);
    expectCheckpointError(() => parseSafetensors(bytes, 'huge.safetensors'), 'huge.safetensors', `header length ${n}`, 'exceeds');
  }
});

/** Parsing must either succeed or throw a CheckpointError: never another error, never hang. */
function parseOrCheckpointError(bytes: Uint8Array, what: string): boolean {
  try {
    parseSafetensors(bytes, 'fuzz.safetensors');
    return true;
  } catch (e) {
    if (!(e instanceof CheckpointError)) assert.unreachable(`${what}: ${(e as Error)?.stack ?? e} (seed ${TEST_SEED})`);
    assert.not.match((e as Error).message, '\n');
    return false;
  }
}

test('fuzzing: random bytes, every truncation, random byte flips, random header lengths', () => {
  const valid = Buffer.concat(
    serializeSafetensors(
      new Map<string, CpuTensor>([
        ['a.weight', { dtype: 'F32', shape: [3, 2], data: randomFloats(6) }],
        ['a.num_batches_tracked', { dtype: 'I64', shape: [], data: BigInt64Array.of(5n) }],
        ['b', { dtype: 'U32', shape: [0], data: new Uint32Array(0) }],
        ['c', { dtype: 'I32', shape: [4], data: Int32Array.of(1, -2, 3, -4) }],
      ]),
      { format: 'pt' },
    ),
  );
  assert.ok(parseOrCheckpointError(valid, 'valid'));
  for (let i = 0; i < 300; i++) {
    const n = Math.floor(rand() * 400);
    const bytes = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
    parseOrCheckpointError(bytes, `random bytes ${i}`);
    // Random bytes after a plausible length field.
    if (n >= 8) {
      new DataView(bytes.buffer).setBigUint64(0, BigInt(Math.floor(rand() * (n - 8))), true);
      parseOrCheckpointError(bytes, `random header ${i}`);
    }
  }
  for (let cut = 0; cut < valid.length; cut++) {
    assert.not.ok(parseOrCheckpointError(valid.subarray(0, cut), `truncated at ${cut}`), `a file cut at byte ${cut} must be rejected`);
  }
  for (let i = 0; i < 1500; i++) {
    const bytes = Uint8Array.from(valid);
    const flips = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    parseOrCheckpointError(bytes, `byte flips ${i}`);
  }
  // Extra bytes at the end are rejected too (the tensors must tile the data).
  assert.not.ok(parseOrCheckpointError(Buffer.concat([valid, Buffer.of(0)]), 'one extra byte'));
});

test('file errors: missing file, unreadable path, unwritable target', async () => {
  const missing = join(dir, 'absent.safetensors');
  await expectCheckpointErrorAsync(() => loadSafetensors(missing), missing, 'file not found');
  await expectCheckpointErrorAsync(() => loadSafetensors(dir), dir, 'cannot read');
  const state = new Map([['w', E.tensor(Float32Array.of(1), [1])]]);
  const nowhere = join(dir, 'no', 'such', 'folder', 'x.safetensors');
  await expectCheckpointErrorAsync(() => saveSafetensors(nowhere, state), nowhere, 'cannot write');
  await expectCheckpointErrorAsync(() => saveSafetensors(join(dir, 'm.safetensors'), state, { epoch: 3 as unknown as string }), 'metadata', 'epoch');
  state.get('w')!.dispose();
});

async function expectWhole(path: string, want: Map<string, CpuTensor>) {
  const got = await loadSafetensors(path);
  for (const [name, t] of want) assert.equal([...got.tensors.get(name)!.data], [...t.data], name);
}

test('atomic save: a failure before the rename leaves the previous checkpoint whole', async () => {
  const path = join(dir, 'ckpt.safetensors');
  const a = new Map<string, CpuTensor>([['w', { dtype: 'F32', shape: [64], data: randomFloats(64) }]]);
  const b = new Map<string, CpuTensor>([['w', { dtype: 'F32', shape: [64], data: randomFloats(64) }]]);
  await writeSafetensors(path, a, { which: 'A' });
  // B's temporary file is written and synced, then the "crash" comes before the rename.
  let temp = '';
  await expectCheckpointErrorAsync(
    () => writeSafetensors(path, b, { which: 'B' }, { beforeRename: (p) => { temp = p; throw new Error('simulated crash'); } }),
    'simulated crash',
  );
  assert.ok(temp.startsWith(join(dir, '.ckpt.safetensors.')), 'the temporary file sits beside the target');
  await expectWhole(path, a);
  assert.is((await loadSafetensors(path)).metadata.which, 'A');
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left behind');
  // A half-written temporary file that a killed run left behind does not disturb loading A.
  const partial = Buffer.concat(serializeSafetensors(b)).subarray(0, 40);
  writeFileSync(join(dir, '.ckpt.safetensors.999.dead.tmp'), partial);
  await expectWhole(path, a);
  // And the next save replaces A with B whole.
  await writeSafetensors(path, b, { which: 'B' });
  await expectWhole(path, b);
});

test('atomic save: a writer process killed at random moments never leaves a torn file', async () => {
  const path = join(dir, 'killed.safetensors');
  const original = Buffer.alloc(3 << 20, 7);
  const rewrite = Buffer.concat(rewriteChunks());
  writeFileSync(path, original);
  const self = fileURLToPath(import.meta.url);
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, [self], { env: { ...process.env, NEURALIGN_TEST_ATOMIC_CHILD: path }, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    await new Promise((r) => setTimeout(r, 20 + rand() * 200));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    // Whatever moment the kill hit, the file is the original or one complete rewrite.
    const bytes = readFileSync(path);
    assert.ok(bytes.equals(original) || bytes.equals(rewrite), `round ${round}: torn file of ${bytes.length} bytes`);
  }
  for (const f of readdirSync(dir).filter((f) => f.startsWith('.killed.safetensors.'))) rmSync(join(dir, f));
});

test.run();
