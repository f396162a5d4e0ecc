// The PGD flags that eval, train, curve and eval-curve share (src/nn/pgd.ts): --eps and --step in
// pixel units, as a number or a fraction such as 8/255, and --steps. Absent flags are undefined,
// so a new run takes PGD_DEFAULTS and a resumed one its saved recipe.
import { PGD_DEFAULTS, pgdRecipe, type PgdOptions } from '../nn/pgd.js';
import { UsageError, positiveInteger, type FlagSpec } from './args.js';

export const PGD_FLAGS = {
  eps: { type: 'string', help: 'PGD: L-infinity radius in pixels of [0, 1], a number or a fraction (default 8/255)' },
  step: { type: 'string', help: 'PGD: size of each sign-gradient step, a number or a fraction (default 2/255)' },
  steps: { type: 'number', help: `PGD: number of steps (default ${PGD_DEFAULTS.steps})` },
} satisfies FlagSpec;

/** A number such as 0.03 or a fraction such as 8/255; undefined when absent. */
export function fraction(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const m = /^\s*([0-9.eE+-]+)\s*(?:\/\s*([0-9.eE+-]+)\s*)?$/.exec(raw);
  const value = m ? Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2])) : NaN;
  if (!Number.isFinite(value)) throw new UsageError(`--${flag} needs a number or a fraction such as 8/255, got '${raw}'`);
  return value;
}

/** The PGD recipe the flags give (absent ones undefined), checked. */
export function pgdFromFlags(flags: { eps?: string; step?: string; steps?: number }): Partial<PgdOptions> {
  const given = { eps: fraction(flags.eps, 'eps'), step: fraction(flags.step, 'step'), steps: flags.steps === 0 ? 0 : positiveInteger(flags.steps, 'steps') };
  try {
    pgdRecipe(given);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return given;
}

/** "eps 8/255, step 2/255, 5 steps": a recipe in the paper's units. */
export function describePgd(r: Pick<PgdOptions, 'eps' | 'step' | 'steps'> & { restarts?: number }): string {
  const in255 = (v: number) => (Math.abs(v * 255 - Math.round(v * 255)) < 1e-9 ? `${Math.round(v * 255)}/255` : String(v));
  const restarts = r.restarts && r.restarts > 1 ? `, ${r.restarts} restarts` : '';
  return `PGD-${r.steps} (L-inf eps ${in255(r.eps)}, step ${in255(r.step)}${restarts})`;
}

/**
 * --adversarial and its PGD recipe as run options (train and curve share them); the PGD flags
 * without --adversarial are refused on a new run (they would change nothing).
 */
export function adversarialFromFlags(flags: { adversarial?: boolean; resume?: boolean; eps?: string; step?: string; steps?: number }): {
  adversarial?: true;
  pgdEps?: number;
  pgdStep?: number;
  pgdSteps?: number;
} {
  const r = pgdFromFlags(flags);
  if (!flags.adversarial && !flags.resume && (r.eps ?? r.step ?? r.steps) !== undefined) throw new UsageError('--eps, --step and --steps need --adversarial');
  return { adversarial: flags.adversarial ? true : undefined, pgdEps: r.eps, pgdStep: r.step, pgdSteps: r.steps };
}
