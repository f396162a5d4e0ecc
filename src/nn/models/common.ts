// What every model shares: its configuration (input channels, classes, width, seed).

export interface ModelConfig {
  /** 1 for Fashion-MNIST (padded to 32x32), 3 for CIFAR. */
  inChannels: number;
  numClasses: number;
  /** Multiplies every hidden channel count (1 = the paper's width). */
  width: number;
  /** Seeds the weight initialization. */
  seed: number;
}

export const defaultConfig: ModelConfig = { inChannels: 3, numClasses: 10, width: 1, seed: 1 };

/** Channels scaled by the width multiplier (at least 1). */
export function scaled(channels: number, width: number): number {
  return Math.max(1, Math.round(channels * width));
}
