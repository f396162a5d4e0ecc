"""scipy side of bench/assignment.ts: times scipy.optimize.linear_sum_assignment on the same matrices.

Run by the benchmark as `/usr/bin/python3 bench/assignment_scipy.py`; it speaks JSON lines:
- it first prints {"scipy": version, "numpy": version};
- then for each request line {"file", "n", "maximize", "reps"} (file: an n x n matrix stored as
  raw little-endian float64, row-major) it loads the matrix (cached), runs `reps` timed solves
  (time.perf_counter, wall clock) and prints {"ms": [...], "total": float, "match": [...]}.
Requests come one run at a time, alternating with the TypeScript solver's runs, so both sides see
the same load on a shared machine. The first request for a file is a warm-up (reps 1, untimed use).
"""
import json
import sys
import time

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment


def main() -> None:
    print(json.dumps({"scipy": scipy.__version__, "numpy": np.__version__}), flush=True)
    cache = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        n = req["n"]
        c = cache.get(req["file"])
        if c is None:
            cache.clear()  # one matrix at a time: 4096 x 4096 is 128 MiB
            c = np.fromfile(req["file"], dtype="<f8").reshape(n, n)
            cache[req["file"]] = c
        maximize = bool(req["maximize"])
        times = []
        for _ in range(req["reps"]):
            t0 = time.perf_counter()
            rows, cols = linear_sum_assignment(c, maximize=maximize)
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({"ms": times, "total": float(c[rows, cols].sum()), "match": cols.tolist()}), flush=True)


if __name__ == "__main__":
    main()
