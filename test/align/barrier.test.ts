// The barrier metrics on hand-made curves whose values are worked out by hand: a symmetric bump,
// unequal endpoints on a non-uniform grid without a sample at t = 1/2, a monotone line, a convex
// dip below the endpoints, and the arc-length mean on non-uniform positions.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  arcLengthMean, arcLengthPositions, barrierSummary, linearBarrier, meanBarrier, midpointAccuracyDrop, midpointLossBarrier, minimum, valueAt,
} from '../../src/align/barrier.js';

const test = suite('barrier metrics');
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a}, expected ${b}`);

test('symmetric bump: every loss barrier is the peak over the endpoints', () => {
  const t = [0, 0.25, 0.5, 0.75, 1];
  const loss = [1, 2, 3, 2, 1];
  const acc = [0.9, 0.8, 0.5, 0.8, 0.9];
  assert.equal(linearBarrier(t, loss), { value: 2, t: 0.5 });
  assert.equal(meanBarrier(t, loss), { value: 2, t: 0.5 });
  close(midpointLossBarrier(t, loss), 2, 'midpoint loss');
  close(midpointAccuracyDrop(t, acc), 0.4, 'midpoint drop');
  assert.equal(minimum(t, acc), { value: 0.5, t: 0.5 });
  // Trapezoids of width 1/4: (0.85 + 0.65 + 0.65 + 0.85) / 4.
  close(arcLengthMean(t, acc), 0.75, 'mean accuracy');
  close(arcLengthMean(t, loss), (1.5 + 2.5 + 2.5 + 1.5) / 4, 'mean loss');
});

test('unequal endpoints on a non-uniform grid: the definitions differ', () => {
  const t = [0, 0.2, 0.6, 1];
  const loss = [1, 2, 3, 3];
  // The line between the endpoint losses is 1 + 2t: 1.4 at 0.2, 2.2 at 0.6, so the rises are 0.6, 0.8.
  const lin = linearBarrier(t, loss);
  close(lin.value, 0.8, 'Entezari');
  assert.is(lin.t, 0.6);
  // max L = 3, first reached at 0.6; mean endpoint loss 2.
  assert.equal(meanBarrier(t, loss), { value: 1, t: 0.6 });
  // L(1/2) interpolated between 2 (t = 0.2) and 3 (t = 0.6): 2.75.
  close(valueAt(t, loss, 0.5), 2.75, 'L(1/2)');
  close(midpointLossBarrier(t, loss), 0.75, 'REPAIR loss');
  const acc = [0.8, 0.6, 0.4, 0.7];
  // acc(1/2) = 0.6 + 0.75 (0.4 - 0.6) = 0.45; mean endpoint accuracy 0.75.
  close(midpointAccuracyDrop(t, acc), 0.3, 'REPAIR accuracy');
  // Trapezoids: 0.2 * 0.7 + 0.4 * 0.5 + 0.4 * 0.55 = 0.56.
  close(arcLengthMean(t, acc), 0.56, 'mean accuracy');
  // valueAt hits samples exactly, including both ends.
  assert.is(valueAt(t, loss, 0), 1);
  assert.is(valueAt(t, loss, 0.6), 3);
  assert.is(valueAt(t, loss, 1), 3);
});

test('a loss linear in t has no Entezari barrier; Git Re-Basin still counts half the endpoint gap', () => {
  const t = [0, 0.25, 0.5, 0.75, 1];
  const loss = t.map((x) => 1 + 2 * x);
  close(linearBarrier(t, loss).value, 0, 'Entezari');
  close(meanBarrier(t, loss).value, 1, 'Git Re-Basin');
  assert.is(meanBarrier(t, loss).t, 1);
  close(midpointLossBarrier(t, loss), 0, 'REPAIR');
  // A linear value's arc-length mean is the mean of its ends on any grid.
  const s = [0, 0.1, 0.7, 0.75, 1];
  close(arcLengthMean(s, s.map((x) => 3 - x)), 2.5, 'linear mean');
});

test('a dip below the endpoints: barriers are negative or zero, the endpoint is the worst point', () => {
  const t = [0, 0.5, 1];
  const loss = [1, 0.5, 1];
  assert.equal(linearBarrier(t, loss), { value: 0, t: 0 });
  assert.equal(meanBarrier(t, loss), { value: 0, t: 0 });
  close(midpointLossBarrier(t, loss), -0.5, 'REPAIR');
  const acc = [0.8, 0.9, 0.8];
  close(midpointAccuracyDrop(t, acc), -0.1, 'accuracy gain');
  assert.equal(minimum(t, acc), { value: 0.8, t: 0 });
});

test('arc-length positions of a polyline, and the mean along it', () => {
  const s = arcLengthPositions([[0, 0], [3, 4], [3, 10]]);
  assert.equal([...s], [0, 5, 11]);
  // Values 1, 3, 2 at s = 0, 5, 11: (5 * 2 + 6 * 2.5) / 11.
  close(arcLengthMean(s, [1, 3, 2]), 25 / 11, 'polyline mean');
  assert.throws(() => arcLengthPositions([[0, 0], [1]]), /coordinates/);
});

test('summary labels each metric with its source; bad input is an error', () => {
  const t = [0, 0.5, 1];
  const s = barrierSummary(t, [0.4, 1.4, 0.6], [0.9, 0.6, 0.8]);
  assert.equal([s.endpoints.loss, s.endpoints.accuracy], [[0.4, 0.6], [0.9, 0.8]]);
  close(s.endpoints.meanLoss, 0.5, 'mean endpoint loss');
  close(s.endpoints.meanAccuracy, 0.85, 'mean endpoint accuracy');
  close(s.lossBarrierLinear.value, 0.9, 'Entezari');
  close(s.lossBarrierMean.value, 0.9, 'Git Re-Basin');
  close(s.midpointAccuracyDrop.value, 0.25, 'REPAIR');
  assert.equal(s.minAccuracy.value, 0.6);
  close(s.meanAccuracy.value, (0.75 + 0.7) / 2, 'Tatro');
  assert.match(s.lossBarrierLinear.source, 'Entezari');
  assert.match(s.lossBarrierMean.source, 'Git Re-Basin');
  assert.match(s.midpointAccuracyDrop.source, 'REPAIR');
  assert.match(s.midpointLossBarrier.source, 'REPAIR');
  assert.match(s.minAccuracy.source, 'Tatro');
  assert.match(s.meanAccuracy.source, 'uniform in t');
  // Other arc-length positions change only the means.
  const curved = barrierSummary(t, [0.4, 1.4, 0.6], [0.9, 0.6, 0.8], [0, 0.8, 1]);
  close(curved.meanAccuracy.value, 0.8 * 0.75 + 0.2 * 0.7, 'curve mean');
  assert.match(curved.meanAccuracy.source, 'over arc length');
  assert.throws(() => linearBarrier([0], [1]), /at least 2 points/);
  assert.throws(() => meanBarrier([0, 1, 0.5], [1, 2, 3]), /must increase/);
  assert.throws(() => minimum([0, 1], [1]), /1 values for 2 positions/);
  assert.throws(() => valueAt([0, 1], [1, 2], 1.5), /outside/);
});

test.run();
