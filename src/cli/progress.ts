// Training progress on stderr. On a terminal: one line redrawn in place (\r, erase to the end of
// the line) with the epoch, batch i/n, running loss, images/s and the time left; each finished
// epoch leaves a summary line. Elsewhere (a pipe, a log file): plain lines, one per read of the
// loss window (every --log-every batches) and one per epoch.
import type { EpochLog, StepProgress } from '../nn/train.js';

export interface ProgressSink {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const [h, m, r] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export class ProgressReporter {
  private readonly tty: boolean;
  private drawn = false;
  /** Training seconds of the epoch at the last report, and the last evaluation's (for the ETA). */
  private trainSeconds = 0;
  private evalSeconds = 0;

  constructor(private readonly sink: ProgressSink = process.stderr) {
    this.tty = !!sink.isTTY;
  }

  step(p: StepProgress): void {
    const imagesPerSecond = p.images / p.seconds;
    const perStep = p.seconds / p.step;
    // Time left in the run: this epoch's remaining steps, then whole epochs at this pace.
    const epochSeconds = p.steps * perStep + this.evalSeconds;
    const eta = (p.steps - p.step) * perStep + this.evalSeconds + (p.epochs - p.epoch) * epochSeconds;
    const width = String(p.steps).length;
    const line =
      `epoch ${p.epoch}/${p.epochs}  batch ${String(p.step).padStart(width)}/${p.steps}  loss ${p.loss.toFixed(4)}  ` +
      `acc ${pct(p.accuracy)}  ${imagesPerSecond.toFixed(0)} img/s  ETA ${formatDuration(eta)}`;
    if (this.tty) {
      this.sink.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else if (p.step < p.steps) {
      this.sink.write(`${line}\n`); // the epoch's last read is covered by its summary line
    }
    this.trainSeconds = p.seconds;
  }

  epoch(log: EpochLog, epochs: number): void {
    this.evalSeconds = Math.max(0, log.seconds - this.trainSeconds);
    const line =
      `epoch ${log.epoch}/${epochs}  train loss ${log.train_loss.toFixed(4)} acc ${pct(log.train_acc)}  ` +
      // A curve run has no test evaluation per epoch (BN would need re-estimating at every t).
      (Number.isFinite(log.test_loss) ? `test loss ${log.test_loss.toFixed(4)} acc ${pct(log.test_acc)}  ` : '') +
      `lr ${log.lr.toPrecision(4)}  ` +
      `${formatDuration(log.seconds)}  ${log.images_per_s.toFixed(0)} img/s`;
    this.sink.write(`${this.tty && this.drawn ? '\r\x1b[K' : ''}${line}\n`);
    this.drawn = false;
  }

  /** Ends a half-drawn bar (before an error message). */
  close(): void {
    if (this.tty && this.drawn) this.sink.write('\n');
    this.drawn = false;
  }
}
