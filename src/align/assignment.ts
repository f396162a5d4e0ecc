// Exact linear assignment (the LAP behind neuron alignment): given an n x m matrix (n <= m), pick
// one distinct column per row so that the summed entries are minimal (costs) or maximal (scores).
//
// Alignment (Tatro et al. 2020: scipy's `linear_sum_assignment(1.01 - C)`) maximizes the total
// matched correlation: `solveAssignment(C, { maximize: true })` gives the same matching, since
// 1.01 - C changes every complete assignment's total by the same constant (and flips the sign).
//
// Algorithm: Jonker-Volgenant (1987): a cheap O(n^2) initialization, then shortest augmenting
// paths (Dijkstra) for the rows it leaves unmatched; O(n^2 m) worst case. Everything runs on the
// minimization form with duals u (rows) and v (columns) such that
//   (1) every reduced cost c[i][j] - u[i] - v[j] is >= 0, and
//   (2) every matched pair has reduced cost 0.
// A complete matching with (1) and (2) is optimal: its total equals the dual bound sum(u) + sum(v).
// (Rectangular n < m also needs v <= 0, and v = 0 on the columns left free: v starts at 0 there
// and every later step only lowers the v of matched columns.) Floating-point rounding can break
// (1) by a few ulps, so "optimal" means optimal up to rounding, as for scipy.
//
// Initialization (each step keeps (1) and (2)):
// - Row then column reduction: u[i] = min_j c[i][j], v[j] = min_i (c[i][j] - u[i]) (square
//   only; rectangular keeps v = 0); a column is matched to a row where its reduced cost is 0 if
//   that row is free. Reducing rows first (JV reduce columns only) spreads the duals over both
//   sides, which shortens the later searches a lot on correlation-like matrices (see
//   bench/README-assignment.md).
// - Reduction transfer: a matched row's slack moves onto its column (v[j] lowered until the
//   row's second-best column ties), so free rows find that column less attractive.
// - Augmenting row reduction, two passes: a free row takes its cheapest column j1 and lowers v[j1]
//   until j1 only ties its second-cheapest column; j1's previous row becomes free and continues.
//   Bounded here to n steps per pass: in floating point a pair of rows can trade a column back
//   and forth by tiny decrements, and late steps gain little; the searches below finish the job
//   (more steps or passes moved work between the phases without a net gain, see the README).
// The augmenting paths: from a free row, grow shortest paths alternately along an unmatched edge
// (row -> column, length = reduced cost) and back along a matched edge (column -> its row, length
// 0) until the nearest column is free; flipping the path matches one more row, and moving the
// duals by the path lengths keeps (1) and (2).
// Algorithm as in Jonker & Volgenant, "A shortest augmenting path algorithm for dense and sparse
// linear assignment problems", Computing 38 (1987); the search loop follows Crouse, "On
// implementing 2D rectangular assignment algorithms", IEEE TAES 52 (2016), as scipy does.

export interface AssignmentOptions {
  /** Maximize the total (scores, e.g. correlations) instead of minimizing it (costs). */
  maximize?: boolean;
  /** Shape of a flat row-major matrix; without them it must be square (n = sqrt(length)). */
  rows?: number;
  cols?: number;
}

export interface Assignment {
  /** Row i is matched to column match[i]; the columns are distinct. */
  match: Int32Array;
  /** Sum over rows of matrix[i][match[i]], added in row order from the input values. */
  total: number;
}

type Matrix = ArrayLike<number> | readonly ArrayLike<number>[];

/**
 * Solves the linear assignment problem exactly on an n x m matrix with n <= m: every row gets a
 * distinct column, with the least (default) or, with `maximize`, the greatest total. `matrix` is
 * either flat row-major (a Float64Array, Float32Array or number[]; give `rows`/`cols` unless it is
 * square) or an array of equally long rows. Entries must be finite numbers; n = 0 is allowed.
 */
export function solveAssignment(matrix: Matrix, options: AssignmentOptions = {}): Assignment {
  const { values, n, m } = flatten(matrix, options);
  const match = n > 0 ? solveMin(values, n, m, options.maximize ?? false) : new Int32Array(0);
  let total = 0;
  for (let i = 0; i < n; i++) total += values[i * m + match[i]];
  return { match, total };
}

/** Checks the shape and entries' types; returns the matrix as a flat row-major typed array. */
function flatten(matrix: Matrix, options: AssignmentOptions): { values: Float64Array | Float32Array; n: number; m: number } {
  let n: number;
  let m: number;
  let values: Float64Array | Float32Array;
  if (matrix.length > 0 && typeof matrix[0] === 'object' && matrix[0] !== null) {
    const rows = matrix as readonly ArrayLike<number>[];
    n = rows.length;
    m = rows[0].length;
    if ((options.rows ?? n) !== n || (options.cols ?? m) !== m) {
      fail(`options give ${options.rows ?? n} x ${options.cols ?? m}, but the rows are ${n} x ${m}`);
    }
    values = new Float64Array(n * m);
    for (let i = 0; i < n; i++) {
      const row = rows[i] as ArrayLike<number> | null | undefined;
      if (row?.length !== m) fail(`row ${i} has length ${row?.length}, row 0 has ${m}: rows must be equally long`);
      copyNumbers(row, 0, values, i, m);
    }
  } else {
    const flat = matrix as ArrayLike<number>;
    const len = flat.length;
    if (options.rows === undefined && options.cols === undefined) {
      n = m = Math.round(Math.sqrt(len));
      if (n * n !== len) fail(`a flat matrix of length ${len} is not square; give options.rows and options.cols`);
    } else {
      n = options.rows ?? len / options.cols!;
      m = options.cols ?? len / n;
      if (!(Number.isInteger(n) && Number.isInteger(m) && n >= 0 && m >= 0 && n * m === len)) {
        fail(`a flat matrix of length ${len} cannot be ${options.rows ?? '?'} x ${options.cols ?? '?'}`);
      }
    }
    if (flat instanceof Float64Array || flat instanceof Float32Array) values = flat;
    else {
      values = new Float64Array(len);
      for (let i = 0; i < n; i++) copyNumbers(flat, i * m, values, i, m);
    }
  }
  if (n > m) fail(`the matrix is ${n} x ${m}, more rows than columns; pass its transpose (n <= m is required)`);
  return { values, n, m };
}

/** Copies row i (m entries from src[start]) into dst, rejecting anything but numbers. */
function copyNumbers(src: ArrayLike<number>, start: number, dst: Float64Array, i: number, m: number): void {
  for (let j = 0; j < m; j++) {
    const x = src[start + j];
    if (typeof x !== 'number') fail(`entry [${i}][${j}] is ${String(x)} (${typeof x}), not a number`);
    dst[i * m + j] = x;
  }
}

function fail(message: string): never {
  throw new Error(`solveAssignment: ${message}`);
}

/** Solver state: duals, the matching both ways, and search scratch (typed arrays, see newState). */
interface State {
  u: Float64Array;
  v: Float64Array;
  /** Column of each row, -1 while free. */
  colOfRow: Int32Array;
  /** Row of each column, -1 while free. */
  rowOfCol: Int32Array;
  /** Search: tentative path length to each column not yet settled (+Infinity once settled). */
  dist: Float64Array;
  /** Search: the row each column is reached from. */
  pred: Int32Array;
  /** Search: matched columns settled so far, their path lengths and their true v. */
  settled: Int32Array;
  settledDist: Float64Array;
  settledV: Float64Array;
  /** Free rows (augmenting row reduction). */
  free: Int32Array;
}

/**
 * Buffers for small problems (n m <= 2^16), kept between solves: at such sizes allocating and
 * collecting ~12 arrays is a visible share of a solve, and alignment solves many small problems
 * (every layer, every PAM step). Larger problems allocate afresh (O(n^2) against O(n^3) work).
 */
let spare = { f64: new Float64Array(0), i32: new Int32Array(0) };

/** The state and the cost matrix's storage, carved from two buffers. */
function newState(n: number, m: number): { s: State; cost: Float64Array } {
  const f64Length = n * m + n + 4 * m;
  const i32Length = n + 3 * m;
  let f64: Float64Array;
  let i32: Int32Array;
  if (n * m > 1 << 16) {
    f64 = new Float64Array(f64Length);
    i32 = new Int32Array(i32Length);
  } else {
    if (spare.f64.length < f64Length || spare.i32.length < i32Length) {
      spare = { f64: new Float64Array(f64Length), i32: new Int32Array(i32Length) };
    }
    f64 = spare.f64;
    i32 = spare.i32;
  }
  // Everything else is written before it is read.
  const v = f64.subarray(n, n + m).fill(0);
  const rowOfCol = i32.subarray(n + 2 * m, n + 3 * m).fill(-1);
  const s: State = {
    u: f64.subarray(0, n),
    v,
    dist: f64.subarray(n + m, n + 2 * m),
    settledDist: f64.subarray(n + 2 * m, n + 3 * m),
    settledV: f64.subarray(n + 3 * m, n + 4 * m),
    colOfRow: new Int32Array(n).fill(-1), // returned as the match
    free: i32.subarray(0, n),
    pred: i32.subarray(n, n + m),
    settled: i32.subarray(n + m, n + 2 * m),
    rowOfCol,
  };
  return { s, cost: f64.subarray(n + 4 * m, f64Length) };
}

/** The column of each row minimizing (or maximizing) the total; n >= 1, n <= m. */
function solveMin(values: Float64Array | Float32Array, n: number, m: number, maximize: boolean): Int32Array {
  const { s, cost } = newState(n, m);
  const c = costsAndRowMinima(values, n, m, maximize, s, cost);
  if (n === m) reduceColumns(c, n, s);
  else matchRowMinima(n, s);
  if (m >= 2) {
    transferReduction(c, n, m, s);
    for (let pass = 0; pass < 2; pass++) augmentingRowReduction(c, n, m, s);
  }
  // u of matched rows from (2); free rows' u is set by their search.
  for (let i = 0; i < n; i++) {
    const j = s.colOfRow[i];
    s.u[i] = j >= 0 ? c[i * m + j] - s.v[j] : 0;
  }
  for (let i = 0; i < n; i++) {
    if (s.colOfRow[i] < 0) augment(c, m, i, s);
  }
  return s.colOfRow;
}

/**
 * One pass over the input: into c the float64 costs to minimize (negated when maximizing), each
 * row's minimum into u and its first cheapest column into s.pred; rejects NaN and infinities.
 * Costs beyond 2^512 in magnitude are scaled by a power of two (exact, and a positive factor
 * keeps the optimum) so that the largest lies in [1, 2): duals and path lengths, sums of up to
 * ~2n costs, then cannot overflow. (Entries under 2^-1074 times the largest may round to 0 then,
 * far below the rounding of any total.)
 */
function costsAndRowMinima(
  values: Float64Array | Float32Array,
  n: number,
  m: number,
  maximize: boolean,
  s: State,
  c: Float64Array,
): Float64Array {
  const { u, pred: argmin } = s;
  const sign = maximize ? -1 : 1;
  let maxAbs = 0;
  for (let i = 0; i < n; i++) {
    const base = i * m;
    let min = Infinity;
    let at = 0;
    for (let j = 0; j < m; j++) {
      const x = sign * values[base + j];
      c[base + j] = x;
      maxAbs = Math.max(maxAbs, Math.abs(x)); // NaN propagates
      if (x < min) {
        min = x;
        at = j;
      }
    }
    u[i] = min;
    argmin[i] = at;
  }
  if (!(maxAbs < Infinity)) {
    let k = 0;
    while (Number.isFinite(values[k])) k++;
    fail(`entry [${Math.floor(k / m)}][${k % m}] is ${values[k]}; entries must be finite`);
  }
  if (maxAbs > 2 ** 512) {
    // 2^-e with e = floor(log2(maxAbs)), as two normal factors (2^-e alone may be subnormal)
    const e = exponentOf(maxAbs);
    const f1 = 2 ** -Math.trunc(e / 2);
    const f2 = 2 ** -(e - Math.trunc(e / 2));
    for (let k = 0; k < c.length; k++) c[k] = c[k] * f1 * f2;
    for (let i = 0; i < n; i++) u[i] = u[i] * f1 * f2;
  }
  return c;
}

/** floor(log2(x)) for finite x > 0, exactly (Math.log2 may round across a power of two). */
function exponentOf(x: number): number {
  let e = Math.floor(Math.log2(x));
  if (2 ** e > x) e--;
  else if (2 ** (e + 1) <= x) e++;
  return e;
}

/**
 * Square case, after the row minima u: v[j] = min_i (c[i][j] - u[i]) >= 0, so every reduced cost
 * is >= 0 and every row and column has a zero (reducing rows first spreads the duals over both
 * sides). Each column is then matched to the first row holding its zero if that row is still
 * free, last column first (as JV). Memory is read row by row.
 */
function reduceColumns(c: Float64Array, n: number, s: State): void {
  const { u, v, colOfRow, rowOfCol } = s;
  const argmin = s.pred; // scratch: the row holding column j's zero
  v.fill(Infinity);
  for (let i = 0; i < n; i++) {
    const base = i * n;
    const ui = u[i];
    for (let j = 0; j < n; j++) {
      const r = c[base + j] - ui;
      if (r < v[j]) {
        v[j] = r;
        argmin[j] = i;
      }
    }
  }
  for (let j = n - 1; j >= 0; j--) {
    const i = argmin[j];
    if (colOfRow[i] < 0) {
      colOfRow[i] = j;
      rowOfCol[j] = i;
    }
  }
}

/**
 * Rectangular case (n < m): v stays 0, as a column left free must have v = 0; each row takes its
 * first cheapest column (in s.pred) if no earlier row has.
 */
function matchRowMinima(n: number, s: State): void {
  const { colOfRow, rowOfCol, pred: argmin } = s;
  for (let i = 0; i < n; i++) {
    const j = argmin[i];
    if (rowOfCol[j] < 0) {
      rowOfCol[j] = i;
      colOfRow[i] = j;
    }
  }
}

/**
 * For each matched row i (column j1): lower v[j1] until c[i][j1] - v[j1] equals the row's
 * second-best c[i][j] - v[j]. Keeps (1) and (2) with u[i] = min_j (c[i][j] - v[j]), the form the
 * row reduction below works with.
 */
function transferReduction(c: Float64Array, n: number, m: number, s: State): void {
  const { v, colOfRow } = s;
  for (let i = 0; i < n; i++) {
    const j1 = colOfRow[i];
    if (j1 < 0) continue;
    const base = i * m;
    let second = Infinity;
    for (let j = 0; j < m; j++) {
      const r = c[base + j] - v[j];
      if (r < second && j !== j1) second = r;
    }
    v[j1] = Math.min(v[j1], c[base + j1] - second);
  }
}

/**
 * One pass of augmenting row reduction over the free rows. Row i finds its best and second-best
 * columns by c[i][j] - v[j] (values r1 <= r2; j1 free if any free column ties r1). If r1 < r2,
 * v[j1] drops by r2 - r1 (i stays matched at the best value and no other row's reduced cost
 * falls), i takes j1, and j1's former row, if any, is processed next. If r1 == r2, i takes j1 if
 * free, else j2, and a displaced row stays free for the next pass. At most n steps (each O(m));
 * rows left free go to the searches.
 */
function augmentingRowReduction(c: Float64Array, n: number, m: number, s: State): void {
  const { v, colOfRow, rowOfCol, free } = s;
  let numFree = 0;
  for (let i = 0; i < n; i++) if (colOfRow[i] < 0) free[numFree++] = i;
  let k = 0;
  for (let steps = 0; k < numFree && steps < n; steps++) {
    const i = free[k++];
    const base = i * m;
    let r1 = c[base] - v[0];
    let j1 = 0;
    let r2 = Infinity;
    let j2 = -1;
    for (let j = 1; j < m; j++) {
      const r = c[base + j] - v[j];
      if (r <= r2) {
        // Among tied best columns prefer a free one (matrices with many ties: no displacement).
        if (r < r1 || (r === r1 && rowOfCol[j] < 0 && rowOfCol[j1] >= 0)) {
          r2 = r1;
          j2 = j1;
          r1 = r;
          j1 = j;
        } else {
          r2 = r;
          j2 = j;
        }
      }
    }
    let i0 = rowOfCol[j1];
    if (r1 < r2) v[j1] -= r2 - r1;
    else if (i0 >= 0) {
      j1 = j2;
      i0 = rowOfCol[j2];
    }
    colOfRow[i] = j1;
    rowOfCol[j1] = i;
    if (i0 >= 0) {
      colOfRow[i0] = -1;
      if (r1 < r2) free[--k] = i0; // continue with i0 (it is free again; a later pass finds it otherwise)
    }
  }
}

/**
 * Matches the free row `start` along one shortest augmenting path (Dijkstra on reduced costs),
 * then updates the duals. Each step scans one row: every unsettled column j gets
 * dist[j] = min(dist[j], minDist + c[row][j] - u[row] - v[j]), and the nearest unsettled column
 * is settled; if it is free the path ends there, else its row is scanned next. Settled columns
 * are skipped without a branch: their v is parked in settledV and set to -Infinity, so their
 * candidate length is +Infinity, and their dist is +Infinity, so they are never the nearest.
 */
function augment(c: Float64Array, m: number, start: number, s: State): void {
  const { u, v, colOfRow, rowOfCol, dist, pred, settled, settledDist, settledV } = s;
  dist.fill(Infinity);
  let numSettled = 0;
  let minDist = 0; // path length to the row being scanned (measured from u[start])
  let row = start;
  let sink = -1;
  while (sink < 0) {
    const crow = c.subarray(row * m, row * m + m);
    const offset = minDist - u[row];
    let lowest = Infinity;
    let lowestAt = -1;
    for (let j = 0; j < crow.length; j++) {
      const d = offset + crow[j] - v[j];
      let dj = dist[j];
      if (d < dj) {
        dj = d;
        dist[j] = d;
        pred[j] = row;
      }
      // Among equally near columns prefer a free one: the path ends sooner.
      if (dj <= lowest && (dj < lowest || rowOfCol[j] < 0)) {
        lowest = dj;
        lowestAt = j;
      }
    }
    if (!(lowest < Infinity)) fail('internal error: no free column reachable');
    minDist = lowest;
    const j = lowestAt;
    if (rowOfCol[j] < 0) {
      sink = j;
    } else {
      settled[numSettled] = j;
      settledDist[numSettled] = lowest;
      settledV[numSettled] = v[j];
      numSettled++;
      v[j] = -Infinity;
      dist[j] = Infinity;
      row = rowOfCol[j];
    }
  }
  // Duals: each settled column and its row move by minDist - dist[j], which keeps its matched
  // edge at 0 and makes every edge on the shortest path tight; the start row takes all of minDist.
  u[start] += minDist;
  for (let k = 0; k < numSettled; k++) {
    const j = settled[k];
    const delta = minDist - settledDist[k];
    u[rowOfCol[j]] += delta;
    v[j] = settledV[k] - delta;
  }
  // Flip the path: each column on it takes the row it was reached from.
  for (let j = sink; ; ) {
    const i = pred[j];
    rowOfCol[j] = i;
    const next = colOfRow[i];
    colOfRow[i] = j;
    if (i === start) break;
    j = next;
  }
}
