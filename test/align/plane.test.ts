// The loss plane of a curve (src/align/plane.ts), against float64 Gram-Schmidt on the weights
// read back:
// - the basis is orthonormal (u.u = v.v = 1, u.v = 0) and lies along B - A and the bend;
// - theta_A projects to (0, 0), theta_B to (|B - A|, 0), the bend to its hand-computed
//   coordinates, an unrelated network to its coordinates and distance;
// - every point of a quadratic Bezier projects into the plane (distance ~ 0) at
//   (2t(1-t) m_x + t^2 |B - A|, 2t(1-t) m_y);
// - the grid spans the control points with the margin; at the control points' coordinates the
//   plane's networks reproduce A's, B's and the bend's test loss after the same BN re-estimation.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../src/engine/index.js';
import { Curve } from '../../src/align/curve.js';
import { recomputeBatchNorm } from '../../src/align/interpolate.js';
import { PlaneBasis, evaluatePlane, gridAxis } from '../../src/align/plane.js';
import { DataLoader, syntheticDataset } from '../../src/nn/data/index.js';
import { evaluate } from '../../src/nn/evaluate.js';
import { MLP, TinyTen } from '../../src/nn/models/index.js';
import { copyInto, type Module, type StateDict } from '../../src/nn/module.js';
import { TEST_SEED, assertClose, rng, setupEngine } from '../helpers.js';
import { randomizeWeights } from './models.js';

const test = suite('plane');
test.before(setupEngine);

const train = syntheticDataset({ n: 24, seed: 4, split: 'train' });
const testSet = syntheticDataset({ n: 16, seed: 4, split: 'test' });

function mlp(seed: number): Module {
  const m = new MLP({ inFeatures: 3 * 32 * 32, hidden: [13, 11], numClasses: 10, seed });
  randomizeWeights(m, TEST_SEED + seed);
  return m.eval();
}

function tinyTen(seed: number): Module {
  const m = new TinyTen({ inChannels: 3, numClasses: 10, width: 0.25, seed });
  randomizeWeights(m, TEST_SEED + seed);
  return m.eval();
}

/** A curve from a to b whose bend is moved off the straight line by random noise. */
function bentCurve(ws: Module, a: Module, b: Module): Curve {
  const curve = new Curve(ws, a.stateDict(), b.stateDict());
  const random = rng(TEST_SEED + 11);
  E.noGrad(() => {
    for (const t of curve.bends[0]!.values()) {
      const noise = Float32Array.from({ length: t.size }, () => (random() - 0.5) * 0.2);
      E.tidy(() => copyInto(t, E.add(t, E.tensor(noise, t.shape))));
    }
  });
  return curve;
}

/** Every tensor of `names` in `state`, concatenated, as float64. */
async function flat(state: StateDict, names: readonly string[]): Promise<number[]> {
  const out: number[] = [];
  for (const name of names) out.push(...(await state.get(name)!.toArray()));
  return out;
}

const dot = (u: number[], v: number[]) => u.reduce((s, x, i) => s + x * v[i]!, 0);
const sub = (u: number[], v: number[]) => u.map((x, i) => x - v[i]!);

test('basis: orthonormal over all weights; A, B, the bend, another network and the quadratic Bezier project as computed in float64', async () => {
  const [a, b, c, ws] = [mlp(1), mlp(2), mlp(4), mlp(3)];
  const curve = bentCurve(ws, a, b);
  const basis = await PlaneBasis.fromCurve(curve, 1);
  const names = curve.names;
  const [A, B, M, C] = [await flat(curve.endpoints[0], names), await flat(curve.endpoints[1], names), await flat(curve.bends[0]!, names), await flat(c.stateDict(), names)];
  const [u, v] = [await flat(basis.u, names), await flat(basis.v, names)];
  assertClose([dot(u, u), dot(v, v), dot(u, v)], [1, 1, 0], 1e-5, 1e-5, 'u.u, v.v, u.v');

  // Hand Gram-Schmidt in float64.
  const e = sub(B, A);
  const ex = Math.sqrt(dot(e, e));
  const ue = e.map((x) => x / ex);
  const dm = sub(M, A);
  const mx = dot(dm, ue);
  const r = dm.map((x, i) => x - mx * ue[i]!);
  const my = Math.sqrt(dot(r, r));
  const ve = r.map((x) => x / my);
  assertClose([basis.xLength, basis.yLength], [ex, my], 1e-5, 0, '|B - A| and the bend distance');
  assertClose(u, ue, 1e-3, 1e-6, 'u = (B - A)/|B - A|');
  assertClose(v, ve, 1e-3, 1e-6, 'v');

  // Control points and an unrelated network C (off the plane).
  const dc = sub(C, A);
  const [cx, cy] = [dot(dc, ue), dot(dc, ve)];
  const cd = Math.sqrt(dot(dc, dc) - cx * cx - cy * cy);
  const points = [curve.endpoints[0], curve.endpoints[1], curve.bends[0]!, c.stateDict()];
  const got = await basis.projectAll(points.length, (i) => points[i]!);
  const tol = 5e-5 * ex;
  assertClose(got.flatMap((p) => [p.x, p.y]), [0, 0, ex, 0, mx, my, cx, cy], 1e-5, tol, 'coordinates of A, B, bend, C');
  assert.is(got[0]!.distance, 0, 'A is the origin');
  for (const p of got.slice(0, 3)) assert.ok(p.distance < tol, `a control point is in the plane (distance ${p.distance}, seed ${TEST_SEED})`);
  assertClose([got[3]!.distance], [cd], 1e-4, tol, "C's distance from the plane");

  // The quadratic Bezier lies in the plane: (2t(1-t) mx + t^2 ex, 2t(1-t) my).
  const ts = [0, 0.1, 0.25, 0.5, 0.7, 0.9, 1];
  const onCurve = await basis.projectAll(ts.length, (i) => curve.weightsAt(ts[i]!));
  assertClose(onCurve.flatMap((p) => [p.x, p.y]), ts.flatMap((t) => [2 * t * (1 - t) * mx + t * t * ex, 2 * t * (1 - t) * my]), 1e-5, tol, 'curve coordinates');
  for (const p of onCurve) assert.ok(p.distance < tol, `a curve point is in the plane (distance ${p.distance} vs |B - A| ${ex}, seed ${TEST_SEED})`);
  basis.dispose();

  // A bend on the line spans no plane.
  const straight = new Curve(ws, a.stateDict(), b.stateDict());
  const refused = await PlaneBasis.fromCurve(straight, 1).then(() => null, (e: Error) => e);
  assert.match(refused?.message ?? 'no error', /lies on the straight line/);
  straight.dispose();
  curve.dispose();
  for (const m of [a, b, c, ws]) m.dispose();
});

test('grid: spans the control points with the margin; without BN each point is theta_A + x u + y v', async () => {
  assertClose(gridAxis(0, 10, 5, 0.2), [-2, 1.5, 5, 8.5, 12], 1e-12, 1e-12, 'gridAxis');
  const [a, b, ws] = [mlp(1), mlp(2), mlp(3)];
  const curve = bentCurve(ws, a, b);
  const testLoader = new DataLoader(testSet, { batchSize: 8 });
  const seen: number[] = [];
  const res = await evaluatePlane(ws, curve, { grid: 3, margin: 0.2, bn: null, test: testLoader, curvePoints: 5, onPoint: (_, done, total) => seen.push(done, total) });
  const [A, M, B] = res.controlPoints;
  const span = (lo: number, hi: number) => [lo - 0.2 * (hi - lo), (lo + hi) / 2, hi + 0.2 * (hi - lo)];
  assertClose(res.grid.xs, span(Math.min(A!.x, B!.x, M!.x), Math.max(A!.x, B!.x, M!.x)), 1e-9, 1e-9, 'xs');
  assertClose(res.grid.ys, span(0, M!.y), 1e-6, 1e-6 * M!.y, 'ys');
  assert.is(res.loss.length, 3);
  assert.ok(res.loss.every((row) => row.length === 3));
  assert.equal(seen.slice(-2), [12, 12], '9 grid points and 3 control points reported');
  assert.is(res.points.length, 12);
  assert.is(res.batchNorm.present, false);
  // No BN: the points at A and B are networks A and B (up to float32 rounding of x u).
  assertClose([A!.eval!.loss, B!.eval!.loss], [(await evaluate(a, testLoader)).loss, (await evaluate(b, testLoader)).loss], 1e-4, 1e-5, 'A and B on the plane');
  assertClose(res.lineProjection.x, [0, 0.25, 0.5, 0.75, 1].map((t) => t * res.basis.xLength), 1e-12, 0, 'line');
  assert.ok(res.curveProjection.distance.every((d) => d < 1e-5 * res.basis.xLength), 'curve in the plane');
  const min = Math.min(...res.loss.flat());
  assert.is(res.minimum.loss, min);
  curve.dispose();
  for (const m of [a, b, ws]) m.dispose();
});

test('with BN: the plane at the control points reproduces A, B and the bend network after the same BN re-estimation', async () => {
  const [a, b, ws, check] = [tinyTen(1), tinyTen(2), tinyTen(3), tinyTen(5)];
  const curve = bentCurve(ws, a, b);
  const bnLoader = new DataLoader(train, { batchSize: 8, shuffle: true, seed: 2 });
  const testLoader = new DataLoader(testSet, { batchSize: 8 });
  const basis = await PlaneBasis.fromCurve(curve, 1);
  const [, pb, pm] = await basis.projectAll(3, (i) => [curve.endpoints[0], curve.endpoints[1], curve.bends[0]!][i]!);
  basis.dispose();
  // A 3 x 3 grid through the three control points: (0, 0), (bx, by), (|B - A|, 0).
  const res = await evaluatePlane(ws, curve, { xs: [0, pm!.x, pb!.x], ys: [0, pm!.y / 2, pm!.y], bn: bnLoader, test: testLoader, controlPoints: false, curvePoints: 3 });
  assert.is(res.points.length, 9);
  assert.ok(res.batchNorm.present && res.batchNorm.reestimated && res.batchNorm.images === 24, 'BN re-estimated on the 24 images');

  // The reference networks: A, B and the bend (A's buffers), BN re-estimated on the same loader.
  const reference = async (state: StateDict): Promise<number> => {
    E.noGrad(() => {
      for (const [name, dst] of check.stateDict()) copyInto(dst, state.get(name) ?? curve.endpoints[0].get(name)!);
    });
    await recomputeBatchNorm(check, bnLoader);
    return (await evaluate(check, testLoader)).loss;
  };
  const expected = [await reference(curve.endpoints[0]), await reference(curve.bends[0]!), await reference(curve.endpoints[1])];
  assertClose([res.loss[0]![0]!, res.loss[2]![1]!, res.loss[0]![2]!], expected, 1e-4, 1e-6, 'loss at A, the bend, B');
  curve.dispose();
  for (const m of [a, b, ws, check]) m.dispose();
});

test.run();
