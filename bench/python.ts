// The Python the baselines run under (bench/assignment_scipy.py, bench/torch_baseline.py) and where
// their scripts are: Debian's packages (python3-scipy, python3-torch) are for /usr/bin/python3.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** $NEURALIGN_PYTHON, else /usr/bin/python3 where it exists, else python3 on the PATH. */
export function pythonPath(): string {
  return process.env.NEURALIGN_PYTHON?.trim() || (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
}

/** bench/<name> from the repository root (the CLI's working directory), else beside the bundle's folder. */
export function benchScript(name: string): string | undefined {
  const candidates = [resolve('bench', name), fileURLToPath(new URL(`../bench/${name}`, import.meta.url))];
  return candidates.find((p) => existsSync(p));
}
