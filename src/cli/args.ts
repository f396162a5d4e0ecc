// A small flag parser: `--name value`, `--name=value`, boolean `--flag`, and positionals.
// Unknown flags are an error, so a typo never silently falls back to a default.

export interface FlagSpec {
  [name: string]: { type: 'string' | 'number' | 'boolean'; help: string; default?: string | number | boolean };
}

/**
 * The parsed value of one flag: a boolean is always there (false when absent); a number or string
 * is there when it has a default, and may be undefined otherwise.
 */
type FlagValue<F> = F extends { type: 'boolean' }
  ? boolean
  : F extends { type: 'number' }
    ? F extends { default: number } ? number : number | undefined
    : F extends { default: string } ? string : string | undefined;

export type Flags<S extends FlagSpec> = { [K in keyof S]: FlagValue<S[K]> };

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseArgs<S extends FlagSpec>(argv: readonly string[], spec: S): { flags: Flags<S>; positionals: string[] } {
  const flags: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) flags[name] = s.default ?? (s.type === 'boolean' ? false : undefined);
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' && spec.help) {
      flags.help = true; // the short form everyone tries first
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eqAt = arg.indexOf('=');
    const name = arg.slice(2, eqAt >= 0 ? eqAt : undefined);
    const s = spec[name];
    if (!s) throw new UsageError(`unknown flag --${name}`);
    if (s.type === 'boolean') {
      flags[name] = eqAt >= 0 ? arg.slice(eqAt + 1) !== 'false' : true;
      continue;
    }
    const raw = eqAt >= 0 ? arg.slice(eqAt + 1) : argv[++i];
    if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    if (s.type === 'number') {
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new UsageError(`--${name} needs a number, got '${raw}'`);
      flags[name] = v;
    } else flags[name] = raw;
  }
  return { flags: flags as Flags<S>, positionals };
}

/** A numeric flag that must be a positive integer when given (a count, a size, a subset). */
export function positiveInteger(value: number | undefined, flag: string): number | undefined {
  if (value !== undefined && !(Number.isInteger(value) && value > 0)) throw new UsageError(`--${flag} needs a positive integer, got ${value}`);
  return value;
}

/** A numeric flag that must be >= 0 when given (a learning rate, a weight decay). */
export function nonNegative(value: number | undefined, flag: string): number | undefined {
  if (value !== undefined && !(value >= 0)) throw new UsageError(`--${flag} needs a number >= 0, got ${value}`);
  return value;
}

/** A string flag that must be one of `names` when given. */
export function choice<T extends string>(value: string | undefined, names: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if (!names.includes(value as T)) throw new UsageError(`--${flag} '${value}' is not one of ${names.join(', ')}`);
  return value as T;
}

export function helpText(usage: string, description: string, spec: FlagSpec): string {
  const lines = [`usage: ${usage}`, '', description, ''];
  const entries = Object.entries(spec);
  if (entries.length) {
    lines.push('options:');
    const width = Math.max(...entries.map(([n, s]) => n.length + (s.type === 'boolean' ? 0 : 6)));
    for (const [name, s] of entries) {
      const left = `--${name}${s.type === 'boolean' ? '' : s.type === 'number' ? ' <n>  ' : ' <s>  '}`;
      const def = s.default !== undefined && s.type !== 'boolean' ? ` (default ${s.default})` : '';
      lines.push(`  ${left.padEnd(width + 4)} ${s.help}${def}`);
    }
  }
  return lines.join('\n');
}
