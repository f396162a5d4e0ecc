// SIGINT (Ctrl-C) and SIGTERM (kill, Slurm's scancel) while a command runs. A command with safe
// points (train, curve: between two steps, after a checkpoint write) asks for `stopSignal()`;
// the first signal then only aborts it, the run stops at its next safe point, and the command
// says where it stopped and how to resume (exit 130 for SIGINT, 143 for SIGTERM: 128 + the
// signal's number, as a shell reports a process killed by it). A second signal, or a signal
// during a command without safe points, exits at once with the same code; process.exit runs the
// exit hooks that remove this process's temporary files (checkpoint/atomic.ts) and locks (nn/lock.ts).
export type StopSignalName = 'SIGINT' | 'SIGTERM';

export const SIGNAL_EXIT_CODES: Record<StopSignalName, number> = { SIGINT: 130, SIGTERM: 143 };

export class StopController {
  readonly #controller = new AbortController();
  #safe = false;

  constructor(
    private readonly exit: (code: number) => void = (code) => process.exit(code),
    private readonly say: (line: string) => void = (line) => process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${line}\n`),
  ) {}

  /** The signal a command with safe points watches; asking for it turns on the stop at a safe point. */
  get signal(): AbortSignal {
    this.#safe = true;
    return this.#controller.signal;
  }

  handle(name: StopSignalName): void {
    if (this.#safe && !this.#controller.signal.aborted) {
      this.say(`neuralign: ${name}: stopping after the current step${name === 'SIGINT' ? ' (Ctrl-C again to stop at once)' : ''}`);
      this.#controller.abort(name);
      return;
    }
    this.say(`neuralign: ${name}: stopping at once`);
    this.exit(SIGNAL_EXIT_CODES[name]);
  }
}

let current: StopController | null = null;

/** Installs the handlers for the duration of one command (main.ts); returns their removal. */
export function installStopHandlers(controller = new StopController()): () => void {
  if (current) return () => {}; // a command run by another (reproduce's stages) shares the outer one
  current = controller;
  const onInt = () => controller.handle('SIGINT');
  const onTerm = () => controller.handle('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    current = null;
  };
}

/** For a command with safe points: the AbortSignal a first SIGINT / SIGTERM aborts (undefined outside runCli). */
export function stopSignal(): AbortSignal | undefined {
  return current?.signal;
}
