// The profiler (src/engine/profiler.ts): what it records (kernel, op, shapes, phase, one record per
// dispatch), that both timing methods time the same dispatches with finite, non-negative times,
// and that it changes nothing: with it off nothing is recorded, and results are bit-identical
// whether it is on or off. No assertion on how long anything takes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, add, aggregate, backward, keep, kernelFamily, matmul, poisonNewTensors, relu, runtime, startProfiling, stopProfiling, sum, tensor, tidy,
  type DispatchRecord, type TimingMethod,
} from '../../src/engine/index.js';
import { SGD } from '../../src/nn/optim.js';
import { setupEngine } from '../helpers.js';

const test = suite('profiler');
// New tensors are poisoned by a fill dispatch in tests; the counts here are of the ops' own.
test.before(async () => {
  await setupEngine();
  poisonNewTensors(false);
});
test.after(() => poisonNewTensors(true));

const methods = (): TimingMethod[] =>
  runtime().device.features.has('timestamp-query') ? ['timestamp-query', 'isolated-submits'] : ['isolated-submits'];

const what = (r: DispatchRecord) => ({ kernel: kernelFamily(r.kernel), op: r.op, shapes: r.shapes, phase: r.phase });

function assertTimed(records: readonly DispatchRecord[], method: string): void {
  for (const r of records) assert.ok(Number.isFinite(r.ns) && r.ns >= 0, `${method}: ${r.kernel} ${r.op} took ${r.ns} ns`);
}

/** A linear layer with a ReLU and a sum as the loss, and SGD with momentum on its two parameters. */
function layer() {
  const w = keep(tensor(Float32Array.from({ length: 8 * 3 }, (_, i) => Math.sin(i + 1)), [8, 3]));
  const b = keep(tensor(Float32Array.from([0.1, -0.2, 0.3]), [3]));
  const x = keep(tensor(Float32Array.from({ length: 4 * 8 }, (_, i) => Math.cos(i)), [4, 8]));
  w.requiresGrad = b.requiresGrad = true;
  const optimizer = new SGD([w, b], { lr: 0.1, momentum: 0.9 });
  const step = () =>
    tidy(() => {
      backward(sum(relu(add(matmul(x, w), b))));
      optimizer.step();
      optimizer.zeroGrad();
    });
  const dispose = () => [w, b, x].forEach((t) => t.dispose());
  return { w, b, step, dispose };
}

for (const method of ['timestamp-query', 'isolated-submits'] as const) {
  test(`${method}: forward ops are recorded one per dispatch, with their kernel, op, shapes and phase`, async () => {
    if (!methods().includes(method)) return; // no timestamp queries on this adapter
    const a = tensor(Float32Array.from({ length: 32 }, (_, i) => i - 16), [4, 8]);
    const b = tensor(Float32Array.from({ length: 8 }, (_, i) => i), [8]);
    const dispatches = runtime().stream.dispatchCount;
    startProfiling({ method });
    const c = add(a, b);
    const d = relu(c);
    const records = await stopProfiling();
    assert.is(records.length, runtime().stream.dispatchCount - dispatches);
    assert.equal(records.map(what), [
      { kernel: 'binary', op: 'add', shapes: '4x8 8', phase: 'forward' },
      { kernel: 'unary', op: 'relu', shapes: '4x8', phase: 'forward' },
    ]);
    assertTimed(records, method);
    assert.equal(Array.from(await d.toArray()), Array.from({ length: 32 }, (_, i) => Math.max(0, i - 16 + (i % 8))));
    for (const t of [a, b, c, d]) t.dispose();
  });
}

test('a training step: forward, then backward, then one SGD update per parameter', async () => {
  const { step, dispose } = layer();
  step(); // the momentum buffers' first step takes the same kernel; profile a later one
  startProfiling();
  step();
  const records = await stopProfiling();
  const phases = records.map((r) => r.phase);
  const firstBackward = phases.indexOf('backward');
  const firstOptimizer = phases.indexOf('optimizer');
  assert.ok(firstBackward > 0 && firstOptimizer > firstBackward, phases.join(' '));
  assert.ok(phases.slice(0, firstBackward).every((p) => p === 'forward'), phases.join(' '));
  assert.ok(phases.slice(firstBackward, firstOptimizer).every((p) => p === 'backward'), phases.join(' '));
  assert.equal(records.slice(firstOptimizer).map(what), [
    { kernel: 'sgd_momentum', op: 'sgd step', shapes: '8x3', phase: 'optimizer' },
    { kernel: 'sgd_momentum', op: 'sgd step', shapes: '3', phase: 'optimizer' },
  ]);
  assert.equal(records.slice(0, firstBackward).map((r) => r.op), ['matmul', 'add', 'relu', 'sum']);
  assertTimed(records, 'default method');
  // The rows: every dispatch in exactly one, sorted by total time.
  const rows = aggregate(records);
  assert.is(rows.reduce((s, r) => s + r.calls, 0), records.length);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1]!.totalNs >= rows[i]!.totalNs);
  const sgd = aggregate(records, ['family', 'phase']).find((r) => r.kernel === 'sgd_momentum')!;
  assert.equal([sgd.calls, sgd.phase, sgd.op], [2, 'optimizer', '']);
  dispose();
});

test('both timing methods see the same dispatches', async () => {
  const seen: ReturnType<typeof what>[][] = [];
  for (const method of methods()) {
    const { step, dispose } = layer();
    step();
    startProfiling({ method });
    step();
    const records = await stopProfiling();
    assertTimed(records, method);
    seen.push(records.map(what));
    dispose();
  }
  for (const s of seen.slice(1)) assert.equal(s, seen[0]);
});

test('off: nothing is recorded, and a profiled step computes the same bits as an unprofiled one', async () => {
  const bits = async (t: Tensor) => Array.from(new Uint32Array(new Float32Array(await t.toArray()).buffer));
  const plain = layer();
  plain.step();
  plain.step();
  const expected = [await bits(plain.w), await bits(plain.b)];
  plain.dispose();

  const profiled = layer();
  profiled.step();
  const profiler = startProfiling();
  profiled.step();
  // Read while profiling: the isolated-submits method replays the step's dispatches at stop.
  const actual = [await bits(profiled.w), await bits(profiled.b)];
  const records = await stopProfiling();
  assert.equal(actual, expected);
  assert.ok(records.length > 0);
  assert.is(runtime().stream.profiler, null);
  profiled.step();
  await runtime().stream.finish();
  assert.is(profiler.records.length, records.length, 'a step after stopProfiling was recorded');
  profiled.dispose();
});

test('startProfiling twice, or stopProfiling without a profiler, is an error', async () => {
  startProfiling();
  assert.throws(() => startProfiling(), /already attached/);
  await stopProfiling();
  try {
    await stopProfiling();
    assert.unreachable('stopProfiling without a profiler');
  } catch (e) {
    assert.match((e as Error).message, /no profiler/);
  }
});

test.run();
