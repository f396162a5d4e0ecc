// The engine's settings from the environment (NEURALIGN_MATMUL, NEURALIGN_GRID, ...), read without
// naming Node's `process`, so the same code runs in a browser page: there `globalThis.process` is
// undefined and only the values a page sets with setEnvVars exist.

const overrides = new Map<string, string>();

/** The value of environment variable `name`: a page's override, else Node's process.env, else undefined. */
export function envVar(name: string): string | undefined {
  if (overrides.has(name)) return overrides.get(name);
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.[name];
}

/** Sets (or, with undefined, clears) overrides of environment variables; for pages without `process`. */
export function setEnvVars(values: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) overrides.delete(name);
    else overrides.set(name, value);
  }
}
